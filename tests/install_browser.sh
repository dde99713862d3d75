#!/usr/bin/env bash
# Debian's Chromium (+ a Hangul font for the screenshot) for the Gradio chat's browser test (`make test` runs this).
# Needs root and apt; where that is impossible it says so loudly and the browser test skips.
set -u
need="chromium fonts-nanum"
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi nanum; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "!!! WARNING: cannot install Chromium here (needs root and apt-get): the browser test will SKIP !!!" >&2
  exit 0
fi
echo "installing Debian's Chromium for the Gradio browser test: $need"
log=$(mktemp -t kollm-install-browser.XXXXXX.log)
if ! (DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need) > "$log" 2>&1; then
  echo "!!! WARNING: installing Chromium failed (see $log): the browser test will SKIP !!!" >&2
fi
exit 0
