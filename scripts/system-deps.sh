#!/usr/bin/env bash
# The Debian packages edoc's demo and tests use, installed when missing (one list, used by
# `make demo`, `make test` and .ci/run). As root it runs apt-get; otherwise it names what is
# missing and fails, so nothing half-works later. Usage: scripts/system-deps.sh demo|test
set -euo pipefail
what="${1:-test}"
need=()
# the Japanese font `edoc render` embeds, and the demo's generated receipt scan
[ -f /usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf ] || need+=(fonts-ipaexfont-gothic)
# OCR for `edoc capture` (the demo's capture step, tests/integration/test_capture_ocr.py)
command -v tesseract >/dev/null || need+=(tesseract-ocr)
compgen -G "/usr/share/tesseract-ocr/*/tessdata/jpn.traineddata" >/dev/null \
  || need+=(tesseract-ocr-jpn)
if [ "$what" = test ]; then
  # openssl: independent evidence checks; softhsm2: the PKCS#11 seal-key test
  command -v openssl >/dev/null || need+=(openssl)
  command -v softhsm2-util >/dev/null || need+=(softhsm2)
  # the real browser of the web viewer's test (tests/web/test_browser.py, via Playwright)
  command -v chromium >/dev/null || need+=(chromium)
  # the PostgreSQL server the catalog tests start themselves (tests/postgres.py)
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error [SYSTEM_DEPS_MISSING]: install these Debian packages first: ${need[*]}" >&2
  echo "  sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
