# mp-remote's fleet lease on this host: one JSON file, read and changed under a lock so that
# two control nodes never both take it. POSIX sh; no jq, no python.
#
# usage: sh -s -- ACTION LEASE_FILE [RUN_ID TTL_SECONDS OWNER COMMAND [TAKEOVER_RUN_ID]]
#   ACTION: read | acquire | renew | release | force
#   OWNER and COMMAND arrive JSON-escaped by the control node (without their quotes); RUN_ID
#   holds only [A-Za-z0-9._-]. Expiry is computed on this host's clock.
# output: "now EPOCH", "state STATE" (what was found: absent, corrupt, future, ours, expired,
#   held), then the lease in effect: the one written, the one found, or the one removed.
# exit: 0 done; 10 held by another run; 11 unreadable lease; 12 newer format;
#   13 not ours any more (renew); 20 cannot read or write the file; 21 cannot lock.
set -u
action=$1
file=$2
run_id=${3-}
ttl=${4-0}
owner=${5-}
command=${6-}
# A run known to be dead (the one a `--retry` repeats): its lease counts as expired.
takeover=${7-}
stamp='+%Y-%m-%dT%H:%M:%SZ'

if [ "$action" = read ]; then
    echo "now $(date +%s)"
    if [ -e "$file" ]; then
        echo "state found"
        head -c 4096 "$file"
    else
        echo "state absent"
    fi
    exit 0
fi

# Nothing to remove where there is no lease, nor a directory to make for it (clean removed it).
if [ ! -e "$file" ] && { [ "$action" = release ] || [ "$action" = force ]; }; then
    echo "now $(date +%s)"
    echo "state absent"
    exit 0
fi

# Few processes: each costs a host about a millisecond, on every host at every run.
umask 022
dir=${file%/*}
[ "$dir" = "$file" ] || [ -d "$dir" ] || mkdir -p "$dir" || exit 20

# Only one acquirer at a time past this point: flock when there is one, else a lock directory.
if [ "${MP_REMOTE_LEASE_LOCK-}" != mkdir ] && command -v flock >/dev/null 2>&1; then
    exec 9>"$file.lock" || exit 20
    if ! flock -w 30 9; then
        echo "cannot lock $file.lock within 30 s: another mp-remote is stuck on this host" >&2
        exit 21
    fi
else
    tries=0
    until mkdir "$file.lock.d" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -ge 30 ]; then
            echo "cannot lock: $file.lock.d has existed for 30 s; if no mp-remote runs on this host, remove it" >&2
            exit 21
        fi
        sleep 1
    done
    trap 'rmdir "$file.lock.d"' EXIT
    trap 'exit 21' HUP INT TERM
fi

# The clock once: epoch seconds and the same moment as a timestamp.
read -r now now_stamp <<EOF_NOW
$(date -u "+%s ${stamp#+}")
EOF_NOW
echo "now $now"

# A number or a plain string field of the (flattened) lease, empty when missing.
number() {
    printf '%s' "$content" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9]\{1,18\}\).*/\1/p"
}
string() {
    printf '%s' "$content" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([A-Za-z0-9._:+-]*\)\".*/\1/p"
}

content=
if [ ! -e "$file" ]; then
    state=absent
else
    content=$(tr -d '\n\r' <"$file") || exit 20
    format=$(number format)
    expiry=$(number expires_epoch)
    if [ -z "$format" ] || [ -z "$expiry" ]; then
        state=corrupt
    elif [ "$format" -gt 1 ]; then
        state=future
    elif [ -n "$run_id" ] && [ "$(string run_id)" = "$run_id" ]; then
        state=ours
    elif [ "$expiry" -gt "$now" ] && { [ -z "$takeover" ] || [ "$(string run_id)" != "$takeover" ]; }; then
        state=held
    else
        state=expired
    fi
fi
echo "state $state"

found() {
    head -c 4096 "$file"
}

# Writes our lease (temp file, then rename: a reader never sees half of it) and prints it.
write() {
    expires_epoch=$((now + ttl))
    expires=$(date -u -d "@$expires_epoch" "$stamp" 2>/dev/null ||
        date -u -r "$expires_epoch" "$stamp" 2>/dev/null)
    tmp="$file.tmp.$$"
    lease=$(printf '{"format":1,"owner":"%s","run_id":"%s","command":"%s","started":"%s","expires":"%s","expires_epoch":%s}' \
        "$owner" "$run_id" "$command" "$1" "$expires" "$expires_epoch")
    # Mode 0644 from the umask above.
    if printf '%s\n' "$lease" >"$tmp" && mv -f "$tmp" "$file"; then
        printf '%s\n' "$lease"
    else
        rm -f "$tmp"
        exit 20
    fi
}

started() {
    old=$(string started)
    if [ -n "$old" ]; then echo "$old"; else echo "$now_stamp"; fi
}

case "$action:$state" in
*:corrupt) [ "$action" = force ] || { found; exit 11; } ;;
*:future) [ "$action" = force ] || { found; exit 12; } ;;
esac
case "$action:$state" in
acquire:held) found; exit 10 ;;
acquire:ours) write "$(started)" ;;
acquire:*) write "$now_stamp" ;;
renew:ours) write "$(started)" ;;
renew:absent) exit 13 ;;
renew:*) found; exit 13 ;;
release:ours) found && rm -f "$file" || exit 20 ;;
release:absent) ;;
release:*) found ;;
force:absent) ;;
force:*) found && rm -f "$file" || exit 20 ;;
*) echo "unknown action $action" >&2; exit 2 ;;
esac
exit 0
