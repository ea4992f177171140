#!/usr/bin/env bash
# A cron check: mails (or prints, when no mail command exists) logcatch's status when it is not
# RUNNING. Example crontab line:
#   */5 * * * * /usr/local/bin/cron-status.sh /etc/logcatch/config.yaml ops@example.org
set -u
cfg=${1:-/etc/logcatch/config.yaml}; to=${2:-root}
out=$(logcatch status -c "$cfg"); code=$?
if [ "$code" -ne 0 ]; then
    if command -v mail >/dev/null 2>&1; then printf '%s\n' "$out" | mail -s "logcatch on $(hostname): exit $code" "$to"
    else printf '%s\n' "$out"; fi
fi
exit "$code"
