#!/bin/sh
# md-inspect.sh [FAILED_DISK]: which arrays have a member on the failed disk, which disk
# survives, and the model/serial of both, as key=value lines for drp captures.
# Read-only (except --conf-update, below). Exit 2 with a message when the failed disk
# cannot be told, when no array has a member on it, or when an array would be left
# without a working member.
#
# The failed disk may be gone from the bus already (pulled, or dropped by the
# controller): its members then vanish from /proc/mdstat and mdadm --detail only says
# "removed". A degraded array counts as having had a member on a disk that is no longer
# visible; the kernel log ("Disk failure on vdb2") names it when no parameter does.
set -eu

# --conf-check / --conf-update RUN_ID: the only modes that look past the arrays.
# Arrays not named in mdadm.conf, or an initramfs whose copy of mdadm.conf differs,
# come back after a reboot as md127 (auto-read-only): check, and repair.
initrd_arrays() {  # the sorted ARRAY lines of the mdadm.conf inside an initramfs image
    tmp=$(mktemp -d)
    unmkinitramfs "$1" "$tmp" >/dev/null 2>&1 || true
    f=$(find "$tmp" -path '*/etc/mdadm/mdadm.conf' | head -n1)
    [ -z "$f" ] || grep '^ARRAY' "$f" | sort
    rm -rf "$tmp"
}

conf_check() {  # exit 0 when mdadm.conf and every initramfs know every running array
    conf=/etc/mdadm/mdadm.conf
    stale=0
    for uuid in $(mdadm --detail --scan | sed -n 's/.*UUID=\([^ ]*\).*/\1/p'); do
        grep -Eq "^ARRAY .*UUID=$uuid" "$conf" || { echo "$conf does not name the array UUID=$uuid"; stale=1; }
    done
    want=$(grep '^ARRAY' "$conf" | sort)
    for img in /boot/initrd.img-*; do
        [ -e "$img" ] || continue
        if [ "$(initrd_arrays "$img")" = "$want" ]; then
            echo "$img: its mdadm.conf names the same arrays"
        else
            echo "$img: its mdadm.conf differs from $conf"; stale=1
        fi
    done
    return $stale
}

conf_update() {  # add the missing ARRAY lines (by the array's own name: md127 named drplab:1 -> /dev/md1), rebuild stale initramfs images
    conf=/etc/mdadm/mdadm.conf
    [ -e "$conf.drp-bak-$1" ] || cp -p "$conf" "$conf.drp-bak-$1"
    mdadm --detail --scan | while read -r line; do
        uuid=$(echo "$line" | sed -n 's/.*UUID=\([^ ]*\).*/\1/p')
        grep -Eq "^ARRAY .*UUID=$uuid" "$conf" && continue
        dev=$(echo "$line" | awk '{print $2}')
        name=$(echo "$line" | sed -n 's/.* name=\([^ ]*\).*/\1/p')
        num=${name##*:}
        case "$num" in ''|*[!0-9]*) want=$dev ;; *) want=/dev/md$num ;; esac
        if [ "$want" != "$dev" ] && grep -Eq "^ARRAY $want " "$conf"; then want=$dev; fi
        echo "$line" | sed "s#^ARRAY [^ ]*#ARRAY $want#; s# spares=[0-9]*##" >> "$conf"
        echo "$conf: added ARRAY $want (running as $dev) UUID=$uuid"
    done
    want=$(grep '^ARRAY' "$conf" | sort)
    for img in /boot/initrd.img-*; do
        [ -e "$img" ] || continue
        [ "$(initrd_arrays "$img")" = "$want" ] && continue
        echo "$img: rebuilding (its mdadm.conf is stale)"
        update-initramfs -u -k "${img#/boot/initrd.img-}"
    done
}

case "${1:-}" in
    --conf-check) conf_check; exit $? ;;
    --conf-update) conf_update "${2:?run id}"; conf_check; exit $? ;;
esac

failed=${1:-}

disk_of() {  # vdb2 -> vdb, sdb3 -> sdb, nvme0n1p2 -> nvme0n1 (also when the disk is gone)
    parent=$(lsblk -dno PKNAME "/dev/$1" 2>/dev/null | head -n1)
    if [ -n "$parent" ]; then echo "$parent"; return; fi
    echo "$1" | sed -E 's/^(.*[0-9])p[0-9]+$/\1/; t; s/^([a-z]+)[0-9]+$/\1/'
}

prop() {  # prop DISK KEY: one udev property of a disk
    udevadm info --query=property --name="/dev/$1" 2>/dev/null | sed -n "s/^$2=//p" | head -n1
}

serial_of() {
    [ -b "/dev/$1" ] || { echo "unknown (no longer visible)"; return; }
    s=$(lsblk -dno SERIAL "/dev/$1" 2>/dev/null | sed 's/ *$//')
    [ -n "$s" ] || s=$(prop "$1" ID_SERIAL_SHORT)
    [ -n "$s" ] || s=$(prop "$1" ID_SERIAL)
    [ -n "$s" ] || s=$(cat "/sys/block/$1/serial" 2>/dev/null || true)
    echo "${s:-unknown}"
}

model_of() {
    [ -b "/dev/$1" ] || { echo "unknown (no longer visible)"; return; }
    m=$(lsblk -dno MODEL "/dev/$1" 2>/dev/null | sed 's/ *$//')
    [ -n "$m" ] || m=$(prop "$1" ID_MODEL)
    [ -n "$m" ] || m=$(cat "/sys/block/$1/device/model" 2>/dev/null | sed 's/ *$//' || true)
    if [ -z "$m" ]; then
        case "$1" in vd*) m="virtio disk" ;; *) m=unknown ;; esac
    fi
    echo "$m"
}

members_of() {  # the member tokens of an array in /proc/mdstat: vda2[0] vdb2[1](F)
    awk -v md="$1" '$1 == md {for (i = 3; i <= NF; i++) if ($i ~ /\[[0-9]+\]/) print $i}' /proc/mdstat
}

degraded() {  # the status line of the array shows a missing member: [2/1] [U_]
    awk -v md="$1" '$1 == md {getline; print; exit}' /proc/mdstat | grep -Eq '\[[U_]*_[U_]*\]'
}

[ -r /proc/mdstat ] || { echo "no /proc/mdstat: this host has no md RAID" >&2; exit 2; }
if [ -z "$failed" ]; then
    part=$(grep -oE '[A-Za-z0-9]+\[[0-9]+\]\(F\)' /proc/mdstat | head -n1 | sed 's/\[.*//')
    how="faulty member $part in /proc/mdstat"
    if [ -z "$part" ]; then
        part=$(dmesg 2>/dev/null | sed -n 's/.*md\/raid[0-9]*:md[0-9]*: Disk failure on \([A-Za-z0-9]*\),.*/\1/p' | tail -n1)
        how="kernel log: Disk failure on $part"
    fi
    if [ -z "$part" ]; then
        echo "no faulty member in /proc/mdstat nor in the kernel log: name the disk with --param failed=/dev/sdX" >&2
        exit 2
    fi
    failed=/dev/$(disk_of "$part")
    echo "discovered: failed disk $failed ($how)"
fi
case "$failed" in /dev/*) ;; *) failed=/dev/$failed ;; esac
failed=$(readlink -f "$failed" 2>/dev/null || echo "$failed")  # by-id links name the disk
failed=${failed#/dev/}
gone=no
[ -b "/dev/$failed" ] || gone=yes

arrays=""
survivors=""
for md in $(awk '/^md[0-9]+ *:/ {print $1}' /proc/mdstat); do
    on_failed=no
    healthy=""
    for m in $(members_of "$md"); do
        d=$(disk_of "${m%%\[*}")
        if [ "$d" = "$failed" ]; then
            on_failed=yes
        elif ! echo "$m" | grep -q '(F)'; then
            healthy="$healthy $d"
        fi
    done
    if [ "$on_failed" = no ] && degraded "$md"; then
        if [ "$gone" = yes ]; then
            # the missing member cannot be named any more: it was on the vanished disk
            on_failed=yes
            echo "note: /dev/$md is degraded and /dev/$failed is gone: counted as one of its arrays"
        else
            # a member already removed from the array still carries the array's superblock
            uuid=$(mdadm --detail "/dev/$md" 2>/dev/null | awk '/ UUID :/ {print $3}')
            for p in $(lsblk -lnpo NAME "/dev/$failed"); do
                if [ -n "$uuid" ] && mdadm --examine "$p" 2>/dev/null | grep -q "Array UUID : $uuid"; then
                    on_failed=yes
                fi
            done
        fi
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
case "$survivors" in
    *" "*) echo "refusing: the arrays survive on several disks ($survivors); this runbook mirrors one disk" >&2; exit 2 ;;
esac
echo "failed=/dev/$failed"
echo "failed_serial=$(serial_of "$failed")"
echo "failed_model=$(model_of "$failed")"
echo "arrays=$arrays"
echo "survivor=/dev/$survivors"
echo "survivor_serial=$(serial_of "$survivors")"
echo "survivor_model=$(model_of "$survivors")"
echo "survivor_bytes=$(blockdev --getsize64 "/dev/$survivors")"
