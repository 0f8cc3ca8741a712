"""`uicap capture`: replay Chrome DevTools Recorder flows in headless Chromium and write
records of the input contract (a screenshot, the element's box, type, text, HTML and what
the action did), ready for labelling, `uicap run --dataset DIR` and a push to the Hub."""
