# Lazy code groups for spy-relink (docs/packages.md, "Code that stays compressed"): the objects that
# only a few modules' init functions lead to (OpenSSL for _ssl and _hashlib, SQLite for _sqlite3,
# a built-in package's extensions) keep their code and constants zstd-compressed in the executable
# and are inflated when one of those modules is imported (spy-lazy-code.c).
#
# Which objects: the files that define the group's init functions, and then, until nothing
# changes, every file of the link whose global symbols are referenced only from files already in
# the group, by the linker's own cross-reference table (ld --cref). A file outside the group that
# names anything inside it (but an init function, which the inittab now reaches through a
# wrapper) would run code that is not there yet: such a group is refused with what referenced it.
# musl, libgcc and zstd (what inflates) never join; nor does a file with constructors.
#
# Runs under the closure's interpreter (2.7 too): no f-strings, bytes and text kept apart.
import io, os, re, subprocess, sys

# What never joins a group: the C library and the compiler's runtime (startup, weak dummies of
# musl, what runs before main), and the decoder that inflates groups.
RESIDENT_ARCHIVES = ("libc.a", "libgcc.a", "libgcc_eh.a", "libzstd.a")
CONSTRUCTORS = (".init_array", ".fini_array", ".preinit_array", ".ctors", ".dtors", ".init", ".fini")
# A name a linker script can take as it is.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_./+-]+$")


class LazyError(Exception):
    pass


def map_input_sections(path):
    """(input section, address, size, file) of each input section in the memory map of a link map
    (ld -Map), as text: a section's name and its numbers are on one line, or on two when the name
    is long."""
    section, in_map = None, False
    with io.open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("Linker script and memory map"):
                in_map = True
                continue
            if line.startswith("Cross Reference Table"):
                return
            if not in_map or not line.startswith(" "):
                section = None
                continue
            parts = line.split()
            if len(parts) == 1 and parts[0].startswith("."):
                section = parts[0]
                continue
            if section and len(parts) == 3 and parts[0].startswith("0x"):
                yield section, parts[0], parts[1], parts[2]
            elif len(parts) == 4 and parts[0].startswith(".") and parts[1].startswith("0x"):
                yield tuple(parts)
            section = None


def read_map(path):
    """From a link map made with --cref: {symbol: (definer, [referencers])}, the files of the link
    and the files that bring constructors."""
    files, constructors = set(), set()
    for name, _, size, src in map_input_sections(path):
        if src.startswith("/") or "(" in src:
            files.add(src)
            if name.startswith(CONSTRUCTORS) and int(size, 16):
                constructors.add(src)
    cref, in_cref, symbol = {}, False, None
    with io.open(path, encoding="latin-1") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("Cross Reference Table"):
                in_cref = True
                continue
            if not in_cref or not line.strip() or line.startswith("Symbol "):
                continue
            if not line.startswith(" "):
                # A name too long for its column has its definer on the next line.
                parts = line.split(None, 1)
                symbol = parts[0]
                cref[symbol] = (parts[1].strip() if len(parts) == 2 else None, [])
                continue
            definer, refs = cref[symbol]
            if definer is None:
                cref[symbol] = (line.strip(), refs)
            else:
                refs.append(line.strip())
    return cref, files, constructors


def archive_of(f):
    return f.split("(")[0] if f.endswith(")") else None


_member_counts, _archives_read = {}, set()


def member_counts(archives):
    """How many members of each name each archive has: a linker script names a member by its
    name, so a name that is there twice cannot be placed alone."""
    counts = _member_counts
    for archive in archives:
        if archive in _archives_read:
            continue
        _archives_read.add(archive)
        out = subprocess.check_output(["ar", "t", archive]).decode("latin-1")
        for m in out.split():
            counts[(archive, m)] = counts.get((archive, m), 0) + 1
    return counts


# i686's PIC code calls these to find its GOT; every object has its own COMDAT copy, the linker
# keeps the first it sees, and the rest of the program calls that one. They stay loaded (in an
# output section of their own after .text) and their references are no one's.
PC_THUNKS = ".text.__x86.get_pc_thunk."


def comdat_files(paths):
    """{file as the link map names it: COMDAT sections other than the PC thunks}. COMDAT code
    (C++'s inline functions) is deduplicated by the linker, which may keep an object's copy while
    the rest of the program calls it: such an object never joins a group."""
    found = {}
    for path in sorted(set(paths)):
        out = subprocess.check_output(["readelf", "-SW", path]).decode("latin-1")
        current = path
        for line in out.splitlines():
            if line.startswith("File: "):
                m = re.match(r"File: (.*)\((.*)\)$", line)
                current = "%s(%s)" % (m.group(1), m.group(2)) if m else line[6:]
                continue
            if "]" not in line or not line.lstrip().startswith("["):
                continue
            parts = line.split("]", 1)[1].split()
            if len(parts) == 10 and "G" in parts[6] and parts[1] != "GROUP" and not parts[0].startswith(PC_THUNKS):
                found.setdefault(current, set()).add(parts[0])
    return found


def closure(entries, cref, files, constructors, wrappers, comdat=None, ignored=(), all_entries=()):
    """The files of one group: those defining its init functions, and every file the rest of the
    link reaches only through them. `all_entries`: every group's init functions (what no group's
    init function leads to is live for another reason, and stays loaded with what it calls)."""
    edges = {}
    entry_set = set(entries)
    for sym, (definer, refs) in cref.items():
        if definer is None or sym.startswith(PC_THUNKS[len(".text."):]):
            continue
        for r in refs:
            if r != definer and r not in ignored and not (sym in entry_set and r in wrappers):
                edges.setdefault(r, set()).add((definer, sym))
    heads = set()
    for e in entries:
        definer = cref.get(e, (None, []))[0]
        if definer is None:
            raise LazyError("init function %s is not defined in the link" % e)
        heads.add(definer)

    archives = set(archive_of(f) for f in files if archive_of(f))
    counts = member_counts(sorted(archives))

    def eligible(f):
        a = archive_of(f)
        if f in constructors or f in wrappers or (comdat and f in comdat):
            return False
        if a is None:
            # An object named on the command line: a package's extension, never the program's own.
            return bool(f.endswith(".o") and PLAIN_NAME.match(f) and "/spy-builtins/" in f)
        member = f[len(a) + 1:-1]
        return bool(os.path.basename(a) not in RESIDENT_ARCHIVES and PLAIN_NAME.match(a)
                    and PLAIN_NAME.match(member) and counts.get((a, member)) == 1)

    for f in sorted(heads):
        if not eligible(f):
            raise LazyError("%s (init function of the group) cannot be placed apart" % f)
    # What the rest of the program reaches without going through the group's init functions stays
    # loaded: walk from every file that cannot be in a group, never into the heads.
    nodes = set(files) | set(edges)
    for targets in edges.values():
        nodes |= set(t for t, _ in targets)
    # Roots: what cannot be in a group, and what no init function leads to (a package's ctypes
    # library, named only by the symbol table whose references are ignored here).
    led_to = set(cref[e][0] for e in set(all_entries) | entry_set if cref.get(e, (None,))[0])
    todo = sorted(led_to)
    while todo:
        f = todo.pop()
        for target, _ in sorted(edges.get(f, ())):
            if target not in led_to:
                led_to.add(target)
                todo.append(target)
    reached = set(f for f in nodes if not eligible(f) or f not in led_to)
    todo = sorted(reached)
    while todo:
        f = todo.pop()
        for target, sym in sorted(edges.get(f, ())):
            if target in heads:
                raise LazyError("%s (defined in %s) is referenced from %s, outside the group"
                                % (sym, target, f))
            if target not in reached:
                reached.add(target)
                todo.append(target)
    # The group: what its heads lead to that nothing else does.
    group, todo = set(heads), sorted(heads)
    while todo:
        f = todo.pop()
        for target, _ in sorted(edges.get(f, ())):
            if target not in reached and target not in group:
                group.add(target)
                todo.append(target)
    return set(f for f in group if f in files)


def spec(f):
    a = archive_of(f)
    return "%s:%s" % (a, f[len(a) + 1:-1]) if a else f


# A group's output sections, each with the input sections it takes and its protection once
# inflated. ld gives an input section to the first statement that matches it: .data.rel.ro (read
# only once linked: the executable is not relocated at run time) goes with the constants.
PARTS = (
    ("text", ".text .text.*"),
    ("rodata", ".rodata .rodata.* .data.rel.ro .data.rel.ro.*"),
    ("data", ".data .data.*"),
)
PROTECTION = {"text": 5, "rodata": 1, "data": 3}  # PROT_READ|PROT_EXEC, PROT_READ, PROT_READ|PROT_WRITE


def linker_script(groups):
    """Each group's code, constants and data in output sections of their own after .bss, then the blob
    (the compressed bytes and their table) a page further: a segment of its own, which
    drop_lazy_bytes() moves up in the file once the groups' bytes are taken out."""
    # ld gives an input section to the first statement that matches it, and these come first.
    out = ["SECTIONS {\n  .spy.pc_thunks : { *(%s*) }\n} INSERT AFTER .text;\n" % PC_THUNKS, "SECTIONS {\n"]
    for i, (_, files) in enumerate(groups):
        if not files:
            continue
        for part, patterns in PARTS:
            out.append("  .spy.lazy.%d.%s ALIGN(4096) : {\n" % (i, part))
            for f in sorted(files):
                out.append("    %s(%s)\n" % (spec(f), patterns))
            out.append("  }\n")
    out.append("  .spy.lazy.blob ALIGN(4096) + 4096 : { KEEP(*(.spy.lazy.blob)) }\n")
    out.append("} INSERT AFTER .bss;\n")
    return "".join(out)


def blob_source(ranges, packed_path):
    """The table of ranges and the compressed frames, all in .spy.lazy.blob."""
    c = ["#include <stdint.h>\n",
         "struct spy_lazy_range { uintptr_t start, size, packed_offset, packed_size; uint32_t group, prot; };\n",
         '#define BLOB __attribute__((section(".spy.lazy.blob"), used))\n']
    rows = "".join("    {%#xu, %du, %du, %du, %du, %du},\n" % r for r in ranges) or "    {0, 0, 0, 0, 0, 0},\n"
    c.append("BLOB const struct spy_lazy_range spy_lazy_ranges[] = {\n%s};\n" % rows)
    c.append("BLOB const uintptr_t spy_lazy_range_count = %d;\n" % len(ranges))
    if packed_path:
        c.append('__asm__(".pushsection .spy.lazy.blob,\\"a\\"\\n.globl spy_lazy_packed\\nspy_lazy_packed:\\n'
                 '.incbin \\"%s\\"\\n.popsection\\n");\n' % packed_path)
    else:
        c.append("BLOB const unsigned char spy_lazy_packed[1] = {0};\n")
    return "".join(c)


def wrappers_source(groups, entry_group, py3):
    """One flag per group; one wrapper per init function, named spy_lazy_<init>, which loads the
    group (spy_lazy_load, spy-lazy-code.c) and calls the init function."""
    kind = "void *" if py3 else "void "
    c = ["#include <stdint.h>\n", "extern void spy_lazy_load(uint32_t group, int *done);\n"]
    for i in range(len(groups)):
        c.append("static int done_%d;\n" % i)
    for entry, i in sorted(entry_group.items()):
        c.append("extern %s%s(void);\n" % (kind, entry))
        c.append("%sspy_lazy_%s(void) { spy_lazy_load(%d, &done_%d); %s%s(); }\n"
                 % (kind, entry, i, i, "return " if py3 else "", entry))
    return "".join(c)


def section_addresses(path):
    """{section name: (address, size)} of an ELF, by readelf."""
    out = subprocess.check_output(["readelf", "-SW", path]).decode("latin-1")
    sections = {}
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s", line)
        if m:
            sections[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
    return sections


def placements(map_path):
    """[(input section, address, size, file)] of a link map, but the blob's: what must be the
    same in the link that takes the groups' bytes and in the link that leaves them out."""
    return [row for row in map_input_sections(map_path) if int(row[2], 16) and not row[3].endswith("-blob.o")]


def global_symbols(path):
    """{name: address} of the global symbols of an unstripped ELF, by nm."""
    out = subprocess.check_output(["nm", "-g", "--defined-only", path]).decode("latin-1")
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[2]] = int(parts[0], 16)
    return table


def drop_lazy_bytes(path, lo, hi):
    """Rewrites a linked executable so that its sections in [lo, hi) (the lazy groups, linked as
    ordinary sections so that every address and GOT entry is what the code expects) take no bytes
    in the file: their segments keep their addresses and sizes with no file bytes (the kernel maps
    zero pages), their sections become SHT_NOBITS, and what followed them in the file (the blob,
    then the sections nothing loads and the section headers) moves up by whole pages. ld's own
    NOLOAD would do the first part, but it leaves the GOT entries of the symbols in such sections
    zero. Checks the layout it expects and raises LazyError on anything else."""
    import struct
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if data[:4] != b"\x7fELF" or data[5] != 1:
        raise LazyError("%s is not a little-endian ELF file" % path)
    wide = data[4] == 2
    if wide:
        ehdr, phdr, shdr = "<16xHHIQQQIHHHHHH", "<IIQQQQQQ", "<IIQQQQIIQQ"
    else:
        ehdr, phdr, shdr = "<16xHHIIIIIHHHHHH", "<IIIIIIII", "<IIIIIIIIII"
    (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = struct.unpack_from(ehdr, data, 0)

    def ph(i):
        v = struct.unpack_from(phdr, data, phoff + i * phentsize)
        if wide:  # type, flags, offset, vaddr, paddr, filesz, memsz, align
            return [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]
        return [v[0], v[6], v[1], v[2], v[3], v[4], v[5], v[7]]

    def put_ph(i, p):
        t, flags, off, vaddr, paddr, filesz, memsz, align = p
        v = (t, flags, off, vaddr, paddr, filesz, memsz, align) if wide else (t, off, vaddr, paddr, filesz, memsz, flags, align)
        struct.pack_into(phdr, data, phoff + i * phentsize, *v)

    loads = [(i, ph(i)) for i in range(phnum) if ph(i)[0] == 1]
    lazy_segs = [(i, p) for i, p in loads if lo <= p[3] and p[3] + p[6] <= hi]
    later = [(i, p) for i, p in loads if p[3] >= hi]
    if not lazy_segs or len(later) != 1:
        raise LazyError("%s: expected the lazy segments and then one segment (the blob) last" % path)
    blob_i, blob = later[0]
    if any(p[3] < hi and p[3] + p[6] > lo for _, p in loads if p[3] < lo):
        raise LazyError("%s: a segment below the lazy code reaches into it" % path)
    cut = min(p[2] for _, p in lazy_segs)
    if any(p[2] + p[5] > blob[2] for _, p in lazy_segs) or any(p[2] + p[5] > cut for _, p in loads if p[3] < lo):
        raise LazyError("%s: the lazy segments are not between the loaded data and the blob in the file" % path)
    new_blob = (cut + 0xfff) & ~0xfff
    shift = blob[2] - new_blob
    if shift <= 0 or shift % 0x1000:
        raise LazyError("%s: unexpected file layout around the lazy segments" % path)
    for i, p in lazy_segs:
        # Read-only until the constructor maps its own pages there: never writable and executable.
        p[1], p[2], p[5] = 4, 0, 0  # PF_R
        put_ph(i, p)
    blob[2] -= shift
    put_ph(blob_i, blob)
    for i in range(phnum):
        p = ph(i)
        if p[0] != 1 and p[5] and p[2] + p[5] > cut and p[2] < blob[2] + shift + blob[5]:
            raise LazyError("%s: a segment other than the groups' and the blob's lies in their bytes" % path)
    shstrndx = struct.unpack_from("<H", data, 0x3e if wide else 0x32)[0]
    names_at = struct.unpack_from(shdr, data, shoff + shstrndx * shentsize)[4]

    def name(v):
        start = names_at + v[0]
        return bytes(data[start:data.index(b"\0", start)]).decode("latin-1")
    for i in range(shnum):
        at = shoff + i * shentsize
        v = list(struct.unpack_from(shdr, data, at))
        # name, type, flags, addr, offset, size, ...
        addr, offset = v[3], v[4]
        if addr and lo <= addr < hi:
            if not name(v).startswith(".spy.lazy."):
                raise LazyError("%s: section %s lies among the lazy groups" % (path, name(v)))
            v[1], v[4] = 8, new_blob  # SHT_NOBITS
        elif offset >= new_blob + shift:
            v[4] = offset - shift
        elif v[1] != 8 and offset + v[5] > cut and v[5]:
            raise LazyError("%s: section %d overlaps the lazy code in the file" % (path, i))
        struct.pack_into(shdr, data, at, *v)
    struct.pack_into("<Q" if wide else "<I", data, 0x28 if wide else 0x20, shoff - shift if shoff >= new_blob + shift else shoff)
    out = data[:cut] + bytearray(new_blob - cut) + data[new_blob + shift:]
    with open(path, "wb") as f:
        f.write(bytes(out))
