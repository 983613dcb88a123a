#!/usr/bin/env python3
"""layers.py OUTDIR -- writes the oracle tier's layer tars (deterministic).

Each layer is a plain tar written with Python's tarfile (PAX format), so
every entry is exactly as listed here: the same bytes go to umoci and to
sdme-import, and any difference in the unpacked trees is the unpackers'.

  basic.tar        files, directories (0700, 0555 with content, 1777, 2775),
                   setuid/setgid files, owners 0:0 1234:5678 65534:65534
                   and 100000:100000 (PAX), symlinks (absolute, relative,
                   dangling, long target), a hardlink group of three, a
                   FIFO, char and block devices, xattrs (user.*, and
                   security.capability), mtimes (whole and fractional),
                   names longer than 100 bytes, a root `./` entry (0751, 42:43).
  whiteouts.tar    on top of basic: whiteouts of a file and of a tree, an
                   opaque directory (marker after this layer's entries in
                   one, before them in another), an entry re-created in the
                   same layer as its whiteout, dir->file, file->dir and
                   symlink->dir swaps without whiteouts, a hardlink to a
                   lower-layer file, a directory whose metadata changes.
  swaps.tar        a third layer: swaps back, and a whiteout of an entry of
                   the second layer.
"""
import io
import os
import sys
import tarfile

MTIME = 1_650_000_000
# A v2 file capability: cap_net_raw in permitted and effective.
CAP = bytes([0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])


class Layer:
    def __init__(self, path):
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)

    def add(self, name, kind=tarfile.REGTYPE, data=b"", mode=None, uid=0, gid=0,
            mtime=MTIME, link="", dev=(0, 0), xattrs=None, pax=None):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        if mode is None:
            mode = 0o755 if kind in (tarfile.DIRTYPE,) else 0o777 if kind == tarfile.SYMTYPE else 0o644
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = mtime
        ti.linkname = link
        ti.devmajor, ti.devminor = dev
        headers = dict(pax or {})
        for k, v in (xattrs or {}).items():
            # tarfile encodes PAX values as UTF-8 text; binary values go
            # through surrogateescape, which round-trips the bytes.
            headers["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
        ti.pax_headers = headers
        if kind == tarfile.REGTYPE:
            ti.size = len(data)
            self.tar.addfile(ti, io.BytesIO(data))
        else:
            self.tar.addfile(ti)

    def close(self):
        self.tar.close()


def basic(out):
    L = Layer(os.path.join(out, "basic.tar"))
    L.add("./", tarfile.DIRTYPE, mode=0o751, uid=42, gid=43)
    L.add("etc", tarfile.DIRTYPE)
    L.add("etc/hostname", data=b"oracle\n")
    L.add("etc/shadow", data=b"root:*:1::::::\n", mode=0o640, gid=42)
    L.add("etc/frac", data=b"f", pax={"mtime": "1650000000.123456789"})
    L.add("private", tarfile.DIRTYPE, mode=0o700)
    L.add("private/key", data=b"k" * 1000, mode=0o600)
    L.add("ro", tarfile.DIRTYPE, mode=0o555, mtime=MTIME - 100)
    L.add("ro/inside", data=b"in a read-only directory")
    L.add("tmp", tarfile.DIRTYPE, mode=0o1777)
    L.add("shared", tarfile.DIRTYPE, mode=0o2775, uid=1234, gid=5678)
    L.add("shared/group-file", data=b"g", uid=1234, gid=5678)
    L.add("bin", tarfile.DIRTYPE)
    L.add("bin/suid", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0)
    L.add("bin/sgid", data=b"#!/bin/sh\n", mode=0o2755, uid=0, gid=50)
    L.add("bin/owned", data=b"o", mode=0o4750, uid=1234, gid=5678)
    L.add("bin/ping", data=b"\x7fELF-not-really", mode=0o755, xattrs={"security.capability": CAP})
    L.add("bin/nobody", data=b"n", uid=65534, gid=65534)
    L.add("bin/bigid", data=b"b", pax={"uid": "100000", "gid": "100000"})
    L.add("bin/sh", tarfile.SYMTYPE, link="busybox")
    L.add("bin/abs", tarfile.SYMTYPE, link="/etc/hostname", mtime=MTIME - 5)
    L.add("bin/dangling", tarfile.SYMTYPE, link="../nowhere/at/all")
    L.add("bin/longlink", tarfile.SYMTYPE, link="/" + "t" * 150)
    L.add("data", tarfile.DIRTYPE, xattrs={"user.dir": b"on a directory"})
    L.add("data/x", data=b"xattr file", xattrs={"user.one": b"1", "user.bin": bytes(range(1, 40))})
    L.add("data/h1", data=b"hardlinked content")
    L.add("data/h2", tarfile.LNKTYPE, link="data/h1")
    L.add("data/h3", tarfile.LNKTYPE, link="data/h1")
    L.add("data/" + "n" * 120 + "/" + "m" * 120, data=b"long name")
    L.add("dev", tarfile.DIRTYPE)
    L.add("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))
    L.add("dev/loop7", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(7, 7))
    L.add("dev/fifo", tarfile.FIFOTYPE, mode=0o620)
    L.add("old", tarfile.DIRTYPE)
    L.add("old/tree", tarfile.DIRTYPE)
    L.add("old/tree/a", data=b"a")
    L.add("old/file", data=b"file")
    L.add("opq1", tarfile.DIRTYPE)
    L.add("opq1/lower", data=b"lower")
    L.add("opq1/sub", tarfile.DIRTYPE)
    L.add("opq1/sub/lower2", data=b"lower2")
    L.add("opq2", tarfile.DIRTYPE)
    L.add("opq2/lower", data=b"lower")
    L.add("swap-d2f", tarfile.DIRTYPE)
    L.add("swap-d2f/child", data=b"child")
    L.add("swap-f2d", data=b"file")
    L.add("swap-l2d", tarfile.SYMTYPE, link="etc")
    L.add("again", data=b"lower version")
    L.add("meta", tarfile.DIRTYPE, mode=0o755, uid=1, gid=1)
    L.add("meta/keep", data=b"keep")
    L.close()


def whiteouts(out):
    L = Layer(os.path.join(out, "whiteouts.tar"))
    L.add("old", tarfile.DIRTYPE)
    L.add("old/.wh.file")
    L.add(".wh.again")
    L.add("again", data=b"upper version")
    L.add("old/.wh.tree")
    L.add("opq1", tarfile.DIRTYPE)
    L.add("opq1/new", data=b"new")
    L.add("opq1/sub", tarfile.DIRTYPE)
    L.add("opq1/sub/new2", data=b"new2")
    L.add("opq1/.wh..wh..opq")
    L.add("opq2", tarfile.DIRTYPE)
    L.add("opq2/.wh..wh..opq")
    L.add("opq2/new", data=b"new")
    L.add("swap-d2f", data=b"now a file")
    L.add("swap-f2d", tarfile.DIRTYPE, mode=0o750)
    L.add("swap-f2d/child", data=b"child")
    L.add("swap-l2d", tarfile.DIRTYPE)
    L.add("link-to-lower", tarfile.LNKTYPE, link="etc/hostname")
    L.add("meta", tarfile.DIRTYPE, mode=0o711, uid=2, gid=3)
    L.add("etc", tarfile.DIRTYPE)
    L.add("etc/.wh.shadow")
    L.close()


def swaps(out):
    L = Layer(os.path.join(out, "swaps.tar"))
    L.add("swap-d2f", tarfile.DIRTYPE, mode=0o700)
    L.add("swap-f2d", data=b"file again", mode=0o600)
    L.add(".wh.link-to-lower")
    L.add("opq1", tarfile.DIRTYPE)
    L.add("opq1/.wh.new")
    L.add("data", tarfile.DIRTYPE)
    L.add("data/h2", data=b"no longer a link")
    L.close()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    basic(out)
    whiteouts(out)
    swaps(out)


if __name__ == "__main__":
    main()
