#!/bin/sh
# Runs a build command trusting extra CA certificates, when the build was given some:
#   RUN --mount=type=secret,id=extra-ca with-extra-ca pip install ...
# A TLS-inspecting proxy on the build host needs its CA trusted by pip and apt; the
# bundle lives in /tmp for this one command and never lands in a layer. Without the
# secret (an empty or absent file) the command runs as it is.
set -eu
secret=/run/secrets/extra-ca
if [ ! -s "$secret" ]; then
  exec "$@"
fi
bundle=$(mktemp /tmp/ca-bundle.XXXXXX)
apt_conf=$(mktemp /tmp/apt-ca.XXXXXX)
trap 'rm -f "$bundle" "$apt_conf"' EXIT
cat /etc/ssl/certs/ca-certificates.crt "$secret" > "$bundle"
echo "Acquire::https::CAInfo \"$bundle\";" > "$apt_conf"
export PIP_CERT="$bundle" SSL_CERT_FILE="$bundle" REQUESTS_CA_BUNDLE="$bundle" APT_CONFIG="$apt_conf"
"$@"
