# drplab provisioning script (sh), run once inside the guest by drplab-init.
# The lab prepends the variables DISK_SERIALS, SRC_SERIAL, MD_UUID, FS_UUID,
# MD_NAME. Layout made on each of the two disks (same on both):
#   GPT, partition 1: 1 MiB BIOS boot (EF02, holds GRUB's core.img)
#        partition 2: rest, Linux RAID (FD00), member of /dev/md0
# /dev/md0: RAID-1, metadata 1.2, internal write-intent bitmap, ext4 root.
set -eu
step() { echo "DRPLAB-STEP $(cut -d' ' -f1 /proc/uptime) $*"; }

by_serial() {
    for dev in /sys/block/*; do
        if [ -r "$dev/serial" ] && [ "$(cat "$dev/serial")" = "$1" ]; then
            echo "/dev/${dev##*/}"
            return 0
        fi
    done
    echo "no disk with serial $1" >&2
    return 1
}

wait_node() {
    n=0
    while [ ! -b "$1" ]; do
        n=$((n + 1))
        if [ "$n" -gt 200 ]; then echo "no device node $1" >&2; return 1; fi
        sleep 0.1
    done
}

SRC=$(by_serial "$SRC_SERIAL")
MEMBERS=""
DISKS=""
for serial in $DISK_SERIALS; do
    disk=$(by_serial "$serial")
    step "partition $disk ($serial)"
    sgdisk -a 2048 -n 1:2048:4095 -t 1:EF02 -c 1:biosboot \
        -n 2:4096:0 -t 2:FD00 -c 2:raid "$disk"
    blockdev --rereadpt "$disk" || true
    wait_node "${disk}2"
    DISKS="$DISKS $disk"
    MEMBERS="$MEMBERS ${disk}2"
done

step "create md0 over$MEMBERS"
# The members are blank (all zeros), so they are already in sync.
# shellcheck disable=SC2086
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
    --bitmap=internal --assume-clean --uuid="$MD_UUID" --name="$MD_NAME" \
    --homehost=drplab $MEMBERS
cat /proc/mdstat

step "copy root file system from $SRC"
e2image -ra "$SRC" /dev/md0
mkdir -p /mnt
mount /dev/md0 /mnt
step "grow file system"
resize2fs /dev/md0
rm -f /mnt/usr/local/sbin/drplab-init

for fs in dev proc sys run; do mount --bind "/$fs" "/mnt/$fs"; done
# No udev on this boot: give grub-mkconfig the by-uuid link it checks for.
mkdir -p /dev/disk/by-uuid
ln -sf ../../md0 "/dev/disk/by-uuid/$FS_UUID"

for disk in $DISKS; do
    step "grub-install $disk"
    chroot /mnt grub-install --target=i386-pc "$disk"
done
step "update-grub"
chroot /mnt update-grub

step "check mdadm.conf against the array"
scan=$(mdadm --detail --scan /dev/md0)
echo "$scan"
grep -q "UUID=$MD_UUID" /mnt/etc/mdadm/mdadm.conf
chroot /mnt sh -c 'lsinitramfs /boot/initrd.img-* | grep -q etc/mdadm/mdadm.conf'

step "unmount and stop md0"
for fs in run sys proc dev; do umount "/mnt/$fs"; done
umount /mnt
mdadm --wait-clean /dev/md0 || true
mdadm --stop /dev/md0
sync
step "done"
echo DRPLAB-PROVISION-OK
