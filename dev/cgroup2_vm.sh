#!/usr/bin/env bash
# Run a command in a throwaway Linux guest whose cgroups are pure v2 (memory, pids, cpu), to check the
# sandbox's cgroup v2 paths from a host that only has v1 or a hybrid hierarchy (as our CI does).
#
#   sudo dev/cgroup2_vm.sh 'python -m pytest -q tests/test_sandbox_reuse.py'
#   sudo dev/cgroup2_vm.sh --delegated 'branchmerge sandbox doctor'     # as uid 65534, in a delegated slice
#
# The guest is Debian trixie's cloud kernel (6.12) under QEMU. Its root file system is this host's /,
# shared read-write through virtiofs, with a fresh tmpfs on /tmp, so the command runs in this checkout
# with this venv; output lands here. --delegated runs it as uid 65534 inside a scope of a user slice
# laid out as systemd's user manager lays it out (user@65534.service owned by the user, memory, pids and
# cpu enabled down to app.slice); uid 65534 must be able to read the venv's interpreter. Needs root
# (virtiofsd), qemu-system-x86, zstd and patchelf (apt); the kernel, virtiofsd and the glibc it needs
# are fetched from deb.debian.org once into $VM_DIR.
#
# It uses TCG, not KVM: nested KVM fails on some cloud VMs ("emulation failure" in early boot). TCG runs
# ~10x slower, so tests with tight CPU-time limits (1 s) fail on time there and prove nothing.
set -euo pipefail
DELEGATED=0
if [ "${1:-}" = --delegated ]; then DELEGATED=1; shift; fi
CMD=${1:?usage: cgroup2_vm.sh [--delegated] 'command'}
VM_DIR=${VM_DIR:-/var/cache/branchmerge-vm}
MIRROR=http://deb.debian.org/debian
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$VM_DIR"
cd "$VM_DIR"

fetch() {  # the newest trixie package whose name matches $1, unpacked into ./$2
  [ -d "$2" ] && return
  [ -f Packages ] || curl -fsS "$MIRROR/dists/trixie/main/binary-amd64/Packages.xz" | xz -dc > Packages
  local file
  file=$(awk -v re="^Package: $1\$" '$0 ~ re {p=1} p && /^Filename:/ {print $2; exit}' Packages)
  curl -fsS -o "$2.deb" "$MIRROR/$file" && dpkg-deb -x "$2.deb" "$2" && rm "$2.deb"
}
fetch 'linux-image-6\.12[^ ]*-cloud-amd64' kernel
fetch libc6 libc
fetch virtiofsd virtiofsd
if [ ! -f vmlinux ]; then  # boot the ELF image (PVH entry), past the compressed kernel's stub
  python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.stdout.buffer.write(d[d.find(b"\x28\xb5\x2f\xfd"):])' \
    kernel/boot/vmlinuz-* | zstd -dcq > vmlinux 2>/dev/null || true  # (trailing data after the frame)
fi
if [ ! -f vfsd ]; then
  cp virtiofsd/usr/libexec/virtiofsd vfsd
  patchelf --set-interpreter "$VM_DIR/libc/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
    --set-rpath "$VM_DIR/libc/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" vfsd
fi

# what the guest runs as its init: mounts, the optional delegated slice, the command, power off
printf '%s\n' "$CMD" > cmd.sh
cat > init.sh <<EOF
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t cgroup2 none /sys/fs/cgroup
mount -t tmpfs -o size=2g tmp /tmp; mount -t tmpfs tmp /run; mount -t devtmpfs dev /dev
mkdir -p /dev/shm /dev/pts; mount -t tmpfs shm /dev/shm; mount -t devpts pts /dev/pts
export HOME=/tmp PATH=$REPO/.venv/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8
cd $REPO
echo "guest: \$(uname -r), cgroup v2 controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
if [ $DELEGATED = 1 ]; then
  U=/sys/fs/cgroup/user.slice/user-65534.slice/user@65534.service
  mkdir -p \$U/app.slice/check.scope
  for d in /sys/fs/cgroup /sys/fs/cgroup/user.slice /sys/fs/cgroup/user.slice/user-65534.slice \$U \$U/app.slice; do
    echo "+memory +pids +cpu" > \$d/cgroup.subtree_control
  done
  chown -R 65534:65534 \$U
  sh -c "echo \\\$\\\$ > \$U/app.slice/check.scope/cgroup.procs; exec setpriv --reuid 65534 --regid 65534 --clear-groups sh $VM_DIR/cmd.sh"
else
  sh $VM_DIR/cmd.sh
fi
echo "guest: exit status \$?"
echo o > /proc/sysrq-trigger; sleep 5
EOF
chmod +x init.sh

./vfsd --socket-path="$VM_DIR/vfs.sock" --shared-dir=/ --sandbox=none --cache=never >vfsd.log 2>&1 &
trap 'kill $! 2>/dev/null || true' EXIT
sleep 1
qemu-system-x86_64 -accel tcg,thread=multi -cpu max,-cx16 -m 3G -smp 2 \
  -object memory-backend-file,id=mem,size=3G,mem-path=/dev/shm,share=on -numa node,memdev=mem \
  -chardev socket,id=vfs,path="$VM_DIR/vfs.sock" -device vhost-user-fs-pci,chardev=vfs,tag=root \
  -kernel vmlinux -append "console=ttyS0 rootfstype=virtiofs root=root rw init=$VM_DIR/init.sh quiet" \
  -nographic -no-reboot -nic none
