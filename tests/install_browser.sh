#!/usr/bin/env bash
# Debian's Chromium (+ a Hangul font for the screenshot) for the Gradio chat's browser test, and tmux, the terminal
# the `kollm chat` line-editing test types into (`make test` runs this).
# Needs root and apt; where that is impossible it says so loudly and those tests skip.
set -u
need="chromium fonts-nanum tmux"
if [ -x /usr/bin/chromium ] && command -v tmux >/dev/null && fc-list 2>/dev/null | grep -qi nanum; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "!!! WARNING: cannot install Chromium and tmux here (needs root and apt-get): the browser and terminal tests will SKIP !!!" >&2
  exit 0
fi
echo "installing Debian's Chromium for the Gradio browser test: $need"
log=$(mktemp -t kollm-install-browser.XXXXXX.log)
if ! (DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need) > "$log" 2>&1; then
  echo "!!! WARNING: installing Chromium and tmux failed (see $log): the browser and terminal tests will SKIP !!!" >&2
fi
exit 0
