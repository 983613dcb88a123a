#!/usr/bin/env python3
"""treecmp.py [--dir-mtimes] A B -- compares two directory trees as an unpacker must reproduce them.

Compared per path (lstat, never following symlinks): type, permission bits
including setuid/setgid/sticky, numeric owner, size and SHA-256 of regular
files, symlink targets, device numbers, extended attributes (all namespaces
visible to the caller, security.selinux excepted: that is the host's label),
and mtimes of everything but directories (directory mtimes depend on the
order entries were written in; --dir-mtimes compares them too). Hardlink groups are compared as sets of
paths sharing an inode. The root directories themselves are compared too.

Exit status 0 when the trees match, 1 when they differ (each difference is
printed), 2 on usage errors.
"""
import hashlib
import os
import stat
import sys

SKIP_XATTRS = {"security.selinux"}
DIR_MTIMES = False


def describe(top, rel):
    p = os.path.join(top, rel) if rel else top
    st = os.lstat(p)
    mode = st.st_mode
    d = {
        "type": stat.S_IFMT(mode),
        "perm": oct(stat.S_IMODE(mode)),
        "owner": f"{st.st_uid}:{st.st_gid}",
    }
    if stat.S_ISREG(mode):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        d["size"] = st.st_size
        d["sha256"] = h.hexdigest()
    elif stat.S_ISLNK(mode):
        d["target"] = os.readlink(p)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        d["rdev"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    if not stat.S_ISDIR(mode) or DIR_MTIMES:
        d["mtime_ns"] = st.st_mtime_ns
    xattrs = {}
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        names = []
    for name in sorted(names):
        if name in SKIP_XATTRS:
            continue
        try:
            xattrs[name] = os.getxattr(p, name, follow_symlinks=False).hex()
        except OSError as e:
            xattrs[name] = f"<error {e.errno}>"
    if xattrs:
        d["xattrs"] = xattrs
    return d, (st.st_dev, st.st_ino), stat.S_ISDIR(mode)


def scan(top):
    entries = {}
    inodes = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        d, ino, is_dir = describe(top, rel)
        entries[rel or "."] = d
        if not is_dir:
            inodes.setdefault(ino, []).append(rel)
        else:
            base = os.path.join(top, rel) if rel else top
            for name in os.listdir(base):
                stack.append(os.path.join(rel, name) if rel else name)
    groups = {frozenset(v) for v in inodes.values() if len(v) > 1}
    return entries, groups


def main(argv):
    global DIR_MTIMES
    if len(argv) > 1 and argv[1] == "--dir-mtimes":
        DIR_MTIMES = True
        argv = argv[:1] + argv[2:]
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    a, b = argv[1], argv[2]
    for t in (a, b):
        if not os.path.isdir(t) or os.path.islink(t):
            print(f"treecmp: {t}: not a directory", file=sys.stderr)
            return 2
    ea, ga = scan(a)
    eb, gb = scan(b)
    diffs = []
    for path in sorted(set(ea) | set(eb)):
        if path not in eb:
            diffs.append(f"only in {a}: {path}")
        elif path not in ea:
            diffs.append(f"only in {b}: {path}")
        else:
            da, db = ea[path], eb[path]
            for key in sorted(set(da) | set(db)):
                if da.get(key) != db.get(key):
                    diffs.append(f"{path}: {key}: {da.get(key)!r} != {db.get(key)!r}")
    for g in sorted(ga - gb, key=sorted):
        diffs.append(f"hardlink group only in {a}: {sorted(g)}")
    for g in sorted(gb - ga, key=sorted):
        diffs.append(f"hardlink group only in {b}: {sorted(g)}")
    if diffs:
        for d in diffs[:200]:
            print(f"treecmp: {d}")
        if len(diffs) > 200:
            print(f"treecmp: ... and {len(diffs) - 200} more differences")
        return 1
    print(f"treecmp: {len(ea)} entries, {len(ga)} hardlink groups identical")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
