# Unit tests of graph/python/pyext/spy_lazy_link.py (the lazy code groups of spy-relink), run by
# tests/lazy_link.rs with the host's Python: the choice of a group's objects on made-up
# cross-reference tables, the map reader on a map ld writes, and the ELF rewrite on a small static
# program linked by the host's gcc, which must still run.
import os, shutil, subprocess, sys, tempfile, unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "graph", "python", "pyext"))
sys.dont_write_bytecode = True
import spy_lazy_link as lazy  # noqa: E402

P = "/x/spy-builtins/"  # a package's objects: eligible without being archive members


def cref_of(rows):
    """{symbol: (definer, [referencers])} from (symbol, definer, referencers...) rows."""
    return dict((r[0], (r[1], list(r[2:]))) for r in rows)


class Closure(unittest.TestCase):
    def group(self, rows, entries=("init_m",), files=None, constructors=(), comdat=None, ignored=()):
        cref = cref_of(rows)
        if files is None:
            files = set(f for r in rows for f in r[1:])
        return lazy.closure(list(entries), cref, set(files), set(constructors), {"/w/wrappers.o"},
                            comdat, set(ignored))

    def test_takes_what_only_the_init_function_leads_to_cycles_too(self):
        rows = [
            ("init_m", P + "m.o", "/w/wrappers.o"),
            ("a", P + "a.o", P + "m.o"),
            ("c", P + "c.o", P + "a.o", P + "d.o"),
            ("d", P + "d.o", P + "c.o"),
            ("shared", P + "s.o", P + "a.o", "/w/python.o"),
            ("main", "/w/python.o"),
        ]
        self.assertEqual(self.group(rows), set(P + f for f in ("m.o", "a.o", "c.o", "d.o")))

    def test_refuses_a_group_the_program_reaches_into(self):
        rows = [
            ("init_m", P + "m.o", "/w/wrappers.o"),
            ("helper", P + "m.o", "/w/python.o"),
        ]
        with self.assertRaisesRegex(lazy.LazyError, "helper .* referenced from /w/python.o"):
            self.group(rows)

    def test_refuses_an_init_function_named_elsewhere_than_by_its_wrapper(self):
        rows = [("init_m", P + "m.o", "/w/wrappers.o", "/w/config.o")]
        with self.assertRaisesRegex(lazy.LazyError, "referenced from /w/config.o"):
            self.group(rows)

    def test_constructors_and_comdat_code_stay_loaded(self):
        rows = [
            ("init_m", P + "m.o", "/w/wrappers.o"),
            ("a", P + "a.o", P + "m.o"),
            ("b", P + "b.o", P + "m.o"),
            ("c", P + "c.o", P + "m.o"),
        ]
        got = self.group(rows, constructors=[P + "a.o"], comdat={P + "b.o": {".text._Z1fv"}})
        self.assertEqual(got, {P + "m.o", P + "c.o"})

    def test_pc_thunks_and_ignored_files_are_nobodys_references(self):
        rows = [
            ("init_m", P + "m.o", "/w/wrappers.o"),
            ("__x86.get_pc_thunk.bx", P + "m.o", "/w/python.o", P + "m.o"),
            ("helper", P + "m.o", "/w/spy_symbols.o"),
        ]
        self.assertEqual(self.group(rows, ignored=["/w/spy_symbols.o"]), {P + "m.o"})

    def test_what_no_init_function_leads_to_keeps_its_callees_loaded(self):
        # lib.o, a package's ctypes library, is named only by the symbol table (ignored); what it
        # calls must stay loaded even if the group's init function calls it too.
        rows = [
            ("init_m", P + "m.o", "/w/wrappers.o"),
            ("h", P + "h.o", P + "m.o", P + "lib.o"),
            ("lib_f", P + "lib.o", "/w/spy_symbols.o"),
        ]
        self.assertEqual(self.group(rows, ignored=["/w/spy_symbols.o"]), {P + "m.o"})

    def test_an_undefined_init_function_is_an_error(self):
        with self.assertRaisesRegex(lazy.LazyError, "init_x is not defined"):
            self.group([("init_m", P + "m.o", "/w/wrappers.o")], entries=["init_x"])

    def test_the_programs_own_objects_never_join(self):
        rows = [
            ("init_m", "/w/m.o", "/w/wrappers.o"),
        ]
        with self.assertRaisesRegex(lazy.LazyError, "cannot be placed apart"):
            self.group(rows)


class Linked(unittest.TestCase):
    """A static program without libc: main.o stays loaded, lazy.o's code and constants go into a
    group's sections after .bss, then drop_lazy_bytes takes their bytes out of the file."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def cc(self, *args):
        subprocess.check_call(["gcc", "-O1", "-fno-pie", "-ffunction-sections", "-fdata-sections",
                               "-fno-asynchronous-unwind-tables", "-fno-stack-protector"] + list(args),
                              cwd=self.dir)

    def test_map_reader_and_rewrite(self):
        main = self.write("main.c", """
            extern int lazy_answer(void);
            static long sys_exit(long code) {
                long r; __asm__ volatile ("syscall" : "=a"(r) : "a"(60), "D"(code) : "rcx", "r11", "memory");
                return r;
            }
            int call_lazy;
            void _start(void) { sys_exit(call_lazy ? lazy_answer() : 42); }
        """)
        self.write("lazy.c", 'const char lazy_text[] = "lazy constants, lazy constants, lazy constants";\n'
                             "int lazy_answer(void) { return lazy_text[0]; }\n")
        self.write("blob.s", '.section .spy.lazy.blob,"a"\n.globl blob\nblob: .quad 1, 2, 3, 4\n'
                             '.section .note.GNU-stack,"",@progbits\n')
        self.cc("-c", main, "-o", "main.o")
        self.cc("-c", "lazy.c", "-o", "lazy.o")
        self.cc("-c", "blob.s", "-o", "blob.o")
        # The script names lazy.o by the path the command line gives it (ld would load it twice);
        # spy-relink gives every input by its absolute path, as the map then names it.
        groups = [("lazy", {os.path.join(self.dir, "lazy.o")})]
        self.write("lazy.ld", lazy.linker_script(groups))
        self.cc("-static", "-nostdlib", "-Wl,--gc-sections", "-Wl,-u,lazy_answer", "-Wl,-u,lazy_text", "-Wl,-u,blob",
                "-Wl,--cref", "-Wl,-Map=out.map", "-Wl,-T,lazy.ld",
                *[os.path.join(self.dir, o) for o in ("main.o", "lazy.o", "blob.o")], "-o", "prog")
        prog = os.path.join(self.dir, "prog")

        cref, files, constructors = lazy.read_map(os.path.join(self.dir, "out.map"))
        self.assertEqual(cref["lazy_answer"][0], os.path.join(self.dir, "lazy.o"))
        self.assertIn(os.path.join(self.dir, "main.o"), files)
        self.assertEqual(constructors, set())
        sections = lazy.section_addresses(prog)
        text, rodata = sections[".spy.lazy.0.text"], sections[".spy.lazy.0.rodata"]
        self.assertTrue(text[1] > 0 and rodata[1] > 0)

        before = os.path.getsize(prog)
        lo, hi = text[0], rodata[0] + rodata[1]
        lazy.drop_lazy_bytes(prog, lo, hi)
        self.assertEqual(os.path.getsize(prog), before - 4096 * ((hi - lo + 4095) // 4096))
        # The group's segments keep their addresses and sizes with no bytes; the blob's moved up
        # and reads as it did; the program runs.
        headers = subprocess.check_output(["readelf", "-lW", prog]).decode()
        loads = [l.split() for l in headers.splitlines() if l.strip().startswith("LOAD")]
        empty = [l for l in loads if int(l[4], 16) == 0 and lo <= int(l[2], 16) < hi]
        self.assertEqual(sorted(int(l[2], 16) for l in empty), sorted([text[0], rodata[0]]))
        self.assertEqual(set(l[6] for l in empty), {"R"})  # never writable and executable
        blob = subprocess.check_output(["objcopy", "-O", "binary", "--only-section=.spy.lazy.blob", prog, "/dev/stdout"])
        self.assertEqual(blob[:8], b"\x01" + b"\x00" * 7)
        self.assertEqual(subprocess.call([prog]), 42)
        # Rewriting again finds no bytes to take out: refused, not a broken file.
        with self.assertRaises(lazy.LazyError):
            lazy.drop_lazy_bytes(prog, lo, hi)

    def test_refuses_a_file_that_is_not_elf(self):
        path = self.write("not-elf", "#!/bin/sh\n")
        with self.assertRaisesRegex(lazy.LazyError, "not a little-endian ELF"):
            lazy.drop_lazy_bytes(path, 0x1000, 0x2000)


class Sources(unittest.TestCase):
    def test_wrappers_and_blob(self):
        c = lazy.wrappers_source([("g", set()), ("h", set())], {"PyInit_a": 0, "PyInit_b": 1}, True)
        self.assertIn("void *spy_lazy_PyInit_b(void) { spy_lazy_load(1, &done_1); return PyInit_b(); }", c)
        c = lazy.wrappers_source([("g", set())], {"inita": 0}, False)
        self.assertIn("void spy_lazy_inita(void) { spy_lazy_load(0, &done_0); inita(); }", c)
        blob = lazy.blob_source([(0x401000, 10, 0, 7, 0, 5)], "/b/lazy.zst")
        self.assertIn("{0x401000u, 10u, 0u, 7u, 0u, 5u}", blob)
        self.assertIn('.incbin \\"/b/lazy.zst\\"', blob)
        self.assertIn("spy_lazy_range_count = 1;", blob)


if __name__ == "__main__":
    unittest.main()
