# Recompresses ensurepip's bundled wheels for the single file (issue 19, docs/packages.md):
#   python spy-pack-wheels.py BUNDLED_DIR xz|bz2
#   SPY_ZSTD_PACK=TOOL python spy-pack-wheels.py BUNDLED_DIR zstd
# Each NAME.whl becomes NAME.whl.xz (or .bz2, .zst): the same members in the same order with the
# same names, times and modes, stored instead of deflated, and the whole archive compressed at once.
# A wheel's members compress far better together than one by one (pip 22.3.1: 2.05 MB deflated,
# 1.27 MB so), and the stdlib ZIP cannot do that for them: a wheel is already compressed.
# The single-file patches teach ensurepip to inflate NAME.whl.xz back into a NAME.whl, which pip
# installs as the original (a wheel's RECORD hashes its files, not how the archive stores them).
# Python 2.7 has no lzma module, hence zstd there, which its single file decodes (its zipimport
# reads zstd blocks): TOOL is relink-tools' spy-lazy-pack (one frame at level 19, its size
# recorded), built for the build machine; a sixth smaller than bz2 on pip 19.2.3 and setuptools
# 41.2.0. Runs under 2.7 and 3.x; one member in memory at a time; the same input gives the same
# bytes (fixed times, order and compression settings).
import os
import shutil
import sys
import zipfile


def pack(wheel, method):
    stored = wheel + ".stored"
    src = zipfile.ZipFile(wheel)
    dst = zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED)
    names = set()
    for info in src.infolist():
        if info.filename in names:
            raise SystemExit("%s: member %s twice" % (wheel, info.filename))
        names.add(info.filename)
        copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
        copy.external_attr = info.external_attr
        copy.create_system = 3
        copy.compress_type = zipfile.ZIP_STORED
        dst.writestr(copy, src.read(info.filename))
    dst.close()
    src.close()
    suffix = {"xz": ".xz", "bz2": ".bz2", "zstd": ".zst"}[method]
    if method == "zstd":
        tool = os.environ["SPY_ZSTD_PACK"]
        status = os.spawnv(os.P_WAIT, tool, [tool, stored, wheel + suffix])
        if status != 0:
            raise SystemExit("%s: %s exited with %d" % (wheel, tool, status))
    else:
        if method == "xz":
            import lzma

            packed = lzma.LZMAFile(wheel + suffix, "wb", preset=9 | lzma.PRESET_EXTREME)
        else:
            import bz2

            packed = bz2.BZ2File(wheel + suffix, "wb", compresslevel=9)
        with open(stored, "rb") as f:
            shutil.copyfileobj(f, packed, 1 << 20)
        packed.close()
    # What ensurepip will inflate must be the same archive.
    check = zipfile.ZipFile(stored)
    bad = check.testzip()
    check.close()
    if bad is not None:
        raise SystemExit("%s: member %s does not read back" % (wheel, bad))
    before, after = os.path.getsize(wheel), os.path.getsize(wheel + suffix)
    os.remove(stored)
    os.remove(wheel)
    sys.stdout.write("%s: %d -> %d bytes (%s)\n" % (os.path.basename(wheel), before, after, method))


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("xz", "bz2", "zstd"):
        raise SystemExit("usage: [SPY_ZSTD_PACK=TOOL] spy-pack-wheels.py BUNDLED_DIR xz|bz2|zstd")
    bundled, method = sys.argv[1], sys.argv[2]
    wheels = sorted(n for n in os.listdir(bundled) if n.endswith(".whl"))
    if not wheels:
        raise SystemExit("%s: no wheel to pack" % bundled)
    for name in wheels:
        pack(os.path.join(bundled, name), method)


main()
