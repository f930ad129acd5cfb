#!/bin/sh
# md-inspect.sh FAILED_DISK_OR_EMPTY: which arrays have a member on the failed disk, which
# disks survive, and the model/serial of each disk, as key=value lines for drp captures.
# Read-only. Exit 2 with a message when the failed disk cannot be told or an array would
# be left without a working member.
set -eu
failed=${1:-}

disk_of() {  # vdb2 -> vdb, sdb3 -> sdb, nvme0n1p2 -> nvme0n1
    parent=$(lsblk -no PKNAME "/dev/$1" 2>/dev/null | head -n1 || true)
    if [ -n "$parent" ]; then echo "$parent"; return; fi
    echo "$1" | sed -E 's/(n[0-9]+)p[0-9]+$/\1/; s/([a-z])[0-9]+$/\1/'
}

ident() {  # model and serial of a disk, or "unknown" when it is gone
    if [ -b "/dev/$1" ]; then
        udevadm info --query=property --name="/dev/$1" 2>/dev/null \
            | sed -n 's/^ID_SERIAL_SHORT=//p; s/^ID_SERIAL=//p' | head -n1 | grep . \
            || cat "/sys/block/$1/serial" 2>/dev/null || echo unknown
    else
        echo "unknown (no longer visible)"
    fi
}

[ -r /proc/mdstat ] || { echo "no /proc/mdstat: this host has no md RAID" >&2; exit 2; }
if [ -z "$failed" ]; then
    part=$(grep -oE '[a-z0-9]+\[[0-9]+\]\(F\)' /proc/mdstat | head -n1 | sed 's/\[.*//' || true)
    if [ -z "$part" ]; then
        echo "no faulty member in /proc/mdstat: name the disk with --param failed=/dev/sdX" >&2
        exit 2
    fi
    failed=$(disk_of "$part")
fi
failed=${failed#/dev/}

arrays=""
survivors=""
for md in $(awk '/^md[0-9]+ *:/ {print $1}' /proc/mdstat); do
    members=$(awk -v md="$md" '$1 == md {for (i = 5; i <= NF; i++) print $i}' /proc/mdstat)
    on_failed=no
    healthy=""
    for m in $members; do
        name=${m%%\[*}
        d=$(disk_of "$name")
        if [ "$d" = "$failed" ]; then
            on_failed=yes
        elif ! echo "$m" | grep -q '(F)'; then
            healthy="$healthy $d"
        fi
    done
    # a member that vanished entirely leaves the array degraded with no name for it
    if [ "$on_failed" = no ] && grep -A1 "^$md :" /proc/mdstat | grep -q '_'; then
        for m in $(mdadm --detail "/dev/$md" 2>/dev/null | awk '/faulty|removed/ {print $NF}'); do
            case "$m" in /dev/"$failed"*) on_failed=yes ;; esac
        done
    fi
    [ "$on_failed" = yes ] || continue
    if [ -z "$healthy" ]; then
        echo "refusing: /dev/$md has no working member outside /dev/$failed" >&2
        exit 2
    fi
    arrays="$arrays $md"
    for d in $healthy; do
        case " $survivors " in *" $d "*) ;; *) survivors="$survivors $d" ;; esac
    done
done
arrays=${arrays# }
survivors=${survivors# }
if [ -z "$arrays" ]; then
    echo "no array has a member on /dev/$failed: nothing to replace" >&2
    exit 2
fi
echo "failed=/dev/$failed"
echo "failed_id=$(ident "$failed")"
echo "arrays=$arrays"
echo "survivor=/dev/${survivors%% *}"
echo "survivor_id=$(ident "${survivors%% *}")"
echo "survivor_bytes=$(blockdev --getsize64 "/dev/${survivors%% *}")"
