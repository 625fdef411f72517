use super::*;

fn spec(exclude: &[&str]) -> FuseSpec {
    FuseSpec {
        interpreter: "cpython".into(),
        executable: "bin/python".into(),
        stdlib: "lib/python".into(),
        modules: None,
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        compression: ZipCompression::Stored,
        hot: vec![],
        dictionary: false,
        flavor: "plain".into(),
        sources: false,
    }
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn members_keep_pyc_and_data_drop_sources_caches_and_excluded_paths() {
    let t = tree(&[
        ("os.py", "src"),
        ("os.pyc", "pyc"),
        ("json/__init__.py", ""),
        ("json/__init__.pyc", "pyc"),
        ("json/__pycache__/x.cpython-311.pyc", "cached"),
        ("lib2to3/Grammar.txt", "data"),
        ("test/test_os.pyc", "excluded"),
        ("testing.pyc", "kept: `test` excludes a path, not a prefix of a name"),
        ("turtle.pyc", "excluded file"),
        ("doctest.py", "excluded source"),
        ("doctest.pyc", "its compiled form goes with it"),
    ]);
    let names: Vec<String> = stdlib_members(t.path(), &spec(&["test", "turtle.pyc", "doctest.py"]))
        .ok()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        [
            "json/",
            "json/__init__.pyc",
            "lib2to3/",
            "lib2to3/Grammar.txt",
            "os.pyc",
            "testing.pyc"
        ]
    );
}

#[test]
fn a_source_without_its_pyc_is_an_error() {
    let t = tree(&[("os.py", "src"), ("abc.py", "src"), ("abc.pyc", "pyc")]);
    match stdlib_members(t.path(), &spec(&[])) {
        Err((p, MemberError::Uncompiled)) => assert!(p.ends_with("os.py")),
        _ => panic!("an uncompiled module went unnoticed"),
    }
}

#[test]
fn the_zip_follows_the_executable_with_absolute_offsets_and_fixed_metadata() {
    let t = tree(&[
        ("lib/os.pyc", "os bytecode"),
        ("lib/json/__init__.pyc", "json bytecode"),
        ("exe", "\x7fELF pretend executable"),
    ]);
    let members = stdlib_members(&t.path().join("lib"), &spec(&[])).ok().unwrap();
    let dest = t.path().join("fused");
    let w = write_binary(&t.path().join("exe"), &members, (ZipCompression::Stored, false), &dest, "x")
        .ok()
        .unwrap();
    let (exe_size, total) = (w.executable_size, w.file_size);
    assert!(w.code_signature.is_none());
    let bytes = std::fs::read(&dest).unwrap();
    assert_eq!(bytes.len() as u64, total);
    assert_eq!(&bytes[..exe_size as usize], b"\x7fELF pretend executable");
    // End of central directory, no comment: what the interpreter's getpath looks for.
    assert_eq!(&bytes[bytes.len() - 22..bytes.len() - 18], b"PK\x05\x06");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    // Offsets count from the start of the file: the archive needs no prefix correction.
    assert_eq!(archive.offset(), 0);
    let mut f = archive.by_name("os.pyc").unwrap();
    assert_eq!(f.compression(), zip::CompressionMethod::Stored);
    assert_eq!(f.last_modified(), Some(zip::DateTime::default()));
    assert_eq!(f.unix_mode(), Some(0o100644));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).unwrap();
    assert_eq!(text, "os bytecode");
    drop(f);
    // Same inputs, same bytes.
    let again = t.path().join("again");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::Stored, false), &again, "x")
        .ok()
        .unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), bytes);
}

#[test]
fn a_deflated_zip_stores_the_listed_members_uncompressed() {
    let t = tree(&[
        ("lib/os.pyc", &"os bytecode ".repeat(50)),
        ("lib/typing.pyc", &"typing bytecode ".repeat(50)),
        ("lib/json/__init__.pyc", &"json bytecode ".repeat(50)),
        ("lib/json/decoder.pyc", &"decoder bytecode ".repeat(50)),
        ("lib/jsonx.pyc", &"not json: a name, not a prefix ".repeat(50)),
        ("exe", "\x7fELF pretend executable"),
    ]);
    let mut s = spec(&[]);
    s.hot = vec!["json".into(), "typing.pyc".into()];
    let members = stdlib_members(&t.path().join("lib"), &s).ok().unwrap();
    let dest = t.path().join("fused");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::Deflated, false), &dest, "x")
        .ok()
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    for (name, method) in [
        ("os.pyc", zip::CompressionMethod::Deflated),
        ("jsonx.pyc", zip::CompressionMethod::Deflated),
        ("typing.pyc", zip::CompressionMethod::Stored),
        ("json/__init__.pyc", zip::CompressionMethod::Stored),
        ("json/decoder.pyc", zip::CompressionMethod::Stored),
    ] {
        let mut f = archive.by_name(name).unwrap();
        assert_eq!(f.compression(), method, "{name}");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text).unwrap();
        assert!(text.ends_with("bytecode ") || text.ends_with("prefix "), "{name}: {text}");
    }
}

/// A minimal arm64 Mach-O executable as a linker lays it out: header and load commands, `__TEXT`
/// (one section) up to 0x4000, then `__LINKEDIT` holding a string table of `strsize` bytes and,
/// if `signed`, a placeholder code signature 16-byte aligned after it.
fn synthetic_macho(strsize: u32, signed: bool) -> Vec<u8> {
    let mut cmds: Vec<u8> = Vec::new();
    let seg = |cmds: &mut Vec<u8>, name: &str, vmaddr: u64, vmsize: u64, off: u64, size: u64, sects: &[(&str, u64, u32)]| {
        cmds.extend_from_slice(&0x19u32.to_le_bytes());
        cmds.extend_from_slice(&(72 + 80 * sects.len() as u32).to_le_bytes());
        let mut n = [0u8; 16];
        n[..name.len()].copy_from_slice(name.as_bytes());
        cmds.extend_from_slice(&n);
        for v in [vmaddr, vmsize, off, size] {
            cmds.extend_from_slice(&v.to_le_bytes());
        }
        cmds.extend_from_slice(&[5, 0, 0, 0, 5, 0, 0, 0]); // maxprot, initprot
        cmds.extend_from_slice(&(sects.len() as u32).to_le_bytes());
        cmds.extend_from_slice(&0u32.to_le_bytes());
        for (sname, size, offset) in sects {
            let mut n = [0u8; 16];
            n[..sname.len()].copy_from_slice(sname.as_bytes());
            cmds.extend_from_slice(&n);
            let mut g = [0u8; 16];
            g[..name.len()].copy_from_slice(name.as_bytes());
            cmds.extend_from_slice(&g);
            cmds.extend_from_slice(&(vmaddr + *offset as u64).to_le_bytes());
            cmds.extend_from_slice(&size.to_le_bytes());
            cmds.extend_from_slice(&offset.to_le_bytes());
            cmds.extend_from_slice(&[0u8; 28]);
        }
    };
    let str_off = 0x4000u64;
    let sig_off = (str_off + strsize as u64).div_ceil(16) * 16;
    let sig_size = 0x40u64;
    let end = if signed { sig_off + sig_size } else { str_off + strsize as u64 };
    seg(&mut cmds, "__TEXT", 0x1_0000_0000, 0x4000, 0, 0x4000, &[("__text", 0x100, 0x3f00)]);
    seg(&mut cmds, "__LINKEDIT", 0x1_0000_4000, 0x4000, str_off, end - str_off, &[]);
    cmds.extend_from_slice(&2u32.to_le_bytes()); // LC_SYMTAB
    cmds.extend_from_slice(&24u32.to_le_bytes());
    cmds.extend_from_slice(&str_off.to_le_bytes()[..4]); // symoff (no symbols)
    cmds.extend_from_slice(&0u32.to_le_bytes());
    cmds.extend_from_slice(&(str_off as u32).to_le_bytes());
    cmds.extend_from_slice(&strsize.to_le_bytes());
    let mut ncmds = 3u32;
    if signed {
        cmds.extend_from_slice(&0x1du32.to_le_bytes());
        cmds.extend_from_slice(&16u32.to_le_bytes());
        cmds.extend_from_slice(&(sig_off as u32).to_le_bytes());
        cmds.extend_from_slice(&(sig_size as u32).to_le_bytes());
        ncmds += 1;
    }
    let mut f = Vec::new();
    for v in [
        macho::MH_MAGIC_64,
        macho::CPU_TYPE_ARM64,
        0,
        2,
        ncmds,
        cmds.len() as u32,
        0x0020_0085,
        0,
    ] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&cmds);
    f.resize(0x3f00, 0);
    f.extend((0..0x100).map(|i| i as u8)); // __text
    f.extend(std::iter::repeat_n(b's', strsize as usize));
    f.resize(end as usize, 0xee); // old signature
    f
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Checks a fused Mach-O the way the kernel reads it: __LINKEDIT covers the file up to its end,
/// LC_CODE_SIGNATURE names the last bytes, and every page before them hashes to its slot.
/// Returns the signature offset (where the ZIP ends).
fn check_signed_macho(bytes: &[u8]) -> usize {
    use goblin::mach::load_command::CommandVariant;
    let m = goblin::mach::MachO::parse(bytes, 0).unwrap();
    let (mut linkedit_end, mut sig, mut text) = (0, None, None);
    for lc in &m.load_commands {
        match &lc.command {
            CommandVariant::Segment64(s) if s.segname.starts_with(b"__LINKEDIT\0") => {
                linkedit_end = s.fileoff + s.filesize;
                assert!(s.vmsize >= s.filesize);
            }
            CommandVariant::Segment64(s) if s.segname.starts_with(b"__TEXT\0") => text = Some((s.fileoff, s.filesize)),
            CommandVariant::CodeSignature(c) => sig = Some((c.dataoff as usize, c.datasize as usize)),
            _ => {}
        }
    }
    let (off, size) = sig.expect("LC_CODE_SIGNATURE");
    assert_eq!(linkedit_end, bytes.len() as u64, "__LINKEDIT ends at the end of the file");
    assert_eq!(off + size, bytes.len(), "the signature is last");
    assert_eq!(off % 16, 0);
    let blob = &bytes[off..];
    assert_eq!(be32(blob, 0), 0xfade0cc0);
    assert_eq!(be32(blob, 4) as usize, size);
    assert_eq!(be32(blob, 8), 1);
    assert_eq!(be32(blob, 12), 0, "slot 0: the CodeDirectory");
    let cd = &blob[be32(blob, 16) as usize..];
    assert_eq!(be32(cd, 0), 0xfade0c02);
    assert_eq!(be32(cd, 8), 0x20400);
    assert_eq!(be32(cd, 12), 0x20002, "adhoc | linker-signed");
    let (hash_at, slots, limit) = (be32(cd, 16) as usize, be32(cd, 28) as usize, be32(cd, 32) as usize);
    assert_eq!(limit, off, "the code limit is the signature: every byte before it is covered");
    assert_eq!((cd[36], cd[37], cd[39]), (32, 2, 14), "SHA-256 over 16 KiB pages (arm64)");
    assert_eq!(slots, off.div_ceil(16384));
    let (tbase, tlimit) = text.unwrap();
    assert_eq!(u64::from_be_bytes(cd[64..72].try_into().unwrap()), tbase);
    assert_eq!(u64::from_be_bytes(cd[72..80].try_into().unwrap()), tlimit);
    for (i, page) in bytes[..off].chunks(16384).enumerate() {
        let want: [u8; 32] = Sha256::digest(page).into();
        assert_eq!(&cd[hash_at + 32 * i..hash_at + 32 * i + 32], &want, "page {i}");
    }
    off
}

use sha2::{Digest, Sha256};

fn fuse_synthetic(strsize: u32, signed: bool) -> (tempfile::TempDir, std::path::PathBuf, Written) {
    let t = tree(&[("lib/os.pyc", "os bytecode"), ("lib/json/__init__.pyc", "json bytecode")]);
    std::fs::write(t.path().join("exe"), synthetic_macho(strsize, signed)).unwrap();
    let members = stdlib_members(&t.path().join("lib"), &spec(&[])).ok().unwrap();
    let dest = t.path().join("fused");
    let w = write_binary(
        &t.path().join("exe"),
        &members,
        (ZipCompression::Deflated, false),
        &dest,
        "python3.11-darwin-arm64",
    )
    .ok()
    .unwrap();
    (t, dest, w)
}

#[test]
fn a_mach_o_gets_its_zip_inside_linkedit_and_a_signature_over_the_whole_file() {
    for strsize in [0x20, 0x2b] {
        let (t, dest, w) = fuse_synthetic(strsize, true);
        let bytes = std::fs::read(&dest).unwrap();
        let original = synthetic_macho(strsize, true);
        let sig_at = check_signed_macho(&bytes);
        let s = w.code_signature.as_ref().unwrap();
        assert_eq!((s.offset as usize, s.size as usize), (sig_at, bytes.len() - sig_at));
        assert_eq!(
            w.zip_end as usize, sig_at,
            "the ZIP (with its padding comment) ends at the signature"
        );
        // The executable's own bytes are kept (its old signature is not), up to the header.
        assert_eq!(w.executable_size, 0x4000 + (strsize as u64).div_ceil(16) * 16);
        assert_eq!(
            &bytes[0x3f00..w.executable_size as usize],
            &original[0x3f00..w.executable_size as usize]
        );
        // The string table spans the ZIP: no byte of __LINKEDIT belongs to nothing.
        let m = goblin::mach::MachO::parse(&bytes, 0).unwrap();
        let symtab = m
            .load_commands
            .iter()
            .find_map(|lc| match &lc.command {
                goblin::mach::load_command::CommandVariant::Symtab(s) => Some(*s),
                _ => None,
            })
            .unwrap();
        assert_eq!((symtab.stroff + symtab.strsize) as usize, sig_at);
        assert!(s.string_table_extended);
        // The ZIP: a well-formed archive in the bytes before the signature, offsets from the start
        // of the file, its comment the alignment padding.
        let zip_part = std::io::Cursor::new(bytes[..sig_at].to_vec());
        let mut archive = zip::ZipArchive::new(zip_part).unwrap();
        assert_eq!(archive.offset(), 0);
        assert_eq!(archive.len(), 3);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("json/__init__.pyc").unwrap(), &mut text).unwrap();
        assert_eq!(text, "json bytecode");
        assert!(archive.comment().iter().all(|&b| b == 0) && archive.comment().len() < 16);
        // Same inputs, same bytes; and signing the result again changes nothing.
        let again = t.path().join("again");
        let members = stdlib_members(&t.path().join("lib"), &spec(&[])).ok().unwrap();
        write_binary(
            &t.path().join("exe"),
            &members,
            (ZipCompression::Deflated, false),
            &again,
            "python3.11-darwin-arm64",
        )
        .ok()
        .unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), bytes);
        macho::resign(&again, "python3.11-darwin-arm64").unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), bytes);
    }
}

#[test]
fn an_unsigned_mach_o_gets_a_code_signature_command() {
    let (_t, dest, w) = fuse_synthetic(0x20, false);
    let bytes = std::fs::read(&dest).unwrap();
    check_signed_macho(&bytes);
    let m = goblin::mach::MachO::parse(&bytes, 0).unwrap();
    assert_eq!(m.header.ncmds, 4);
    assert!(w.code_signature.is_some());
}

#[test]
fn mach_o_errors_say_what_is_wrong() {
    let t = tree(&[("lib/os.pyc", "x")]);
    let members = stdlib_members(&t.path().join("lib"), &spec(&[])).ok().unwrap();
    let write = |t: &tempfile::TempDir| {
        write_binary(
            &t.path().join("exe"),
            &members,
            (ZipCompression::Stored, false),
            &t.path().join("o"),
            "x",
        )
    };
    // Data after __LINKEDIT already: not something we can sign.
    let mut trailing = synthetic_macho(0x20, true);
    trailing.extend_from_slice(b"appended");
    std::fs::write(t.path().join("exe"), &trailing).unwrap();
    match write(&t) {
        Err(WriteError::MachO(e)) => assert!(e.to_string().contains("data follows it"), "{e}"),
        _ => panic!("trailing data accepted"),
    }
    // A truncated header.
    let mut short = synthetic_macho(0x20, true);
    short.truncate(40);
    std::fs::write(t.path().join("exe"), &short).unwrap();
    match write(&t) {
        Err(WriteError::MachO(e)) => assert!(e.to_string().contains("load commands"), "{e}"),
        _ => panic!("truncated header accepted"),
    }
}

#[test]
fn a_binarys_license_is_its_parts_not_its_build_tools() {
    let parts = [
        ("linked", "Zlib"),
        ("interpreter", "PSF-2.0"),
        ("build", "GPL-2.0-only WITH Linux-syscall-note"),
        ("linked", "MIT"),
        ("package", "BSD-2-Clause AND Unlicense"),
        ("linked", "Zlib"),
        ("linked", ""),
    ];
    assert_eq!(binary_license(parts), "(BSD-2-Clause AND Unlicense) AND MIT AND PSF-2.0 AND Zlib");
    assert_eq!(binary_license([]), "");
}

/// A member's bytes the way the single-file zipimport reads a solid one (spy-solid-zip.patch):
/// its local header's extra field names its block and where it starts in the block's bytes.
fn solid_member_bytes(zip_bytes: &[u8], header: usize, size: usize) -> Vec<u8> {
    let le16 = |p: usize| u16::from_le_bytes([zip_bytes[p], zip_bytes[p + 1]]) as usize;
    let le32 = |p: usize| u32::from_le_bytes(zip_bytes[p..p + 4].try_into().unwrap()) as usize;
    assert_eq!(le16(header + 8), zipout::SOLID_METHOD as usize);
    let extra = header + 30 + le16(header + 26);
    assert_eq!((le16(extra), le16(extra + 2)), (zipout::SOLID_EXTRA_ID as usize, 8));
    let block = header - le32(extra + 4);
    let start = le32(extra + 8);
    let data = block + 30 + le16(block + 26) + le16(block + 28);
    let packed = &zip_bytes[data..data + le32(block + 18)];
    // A zstd block compressed with the blocks' dictionary names it in its extra field.
    let dictionary = (le16(block + 28) != 0).then(|| {
        let extra = block + 30 + le16(block + 26);
        assert_eq!((le16(extra), le16(extra + 2)), (zipout::SOLID_EXTRA_ID as usize, 4));
        let at = block - le32(extra + 4);
        assert_eq!(le16(at + 8), 93, "the dictionary is a zstd frame");
        let name = &zip_bytes[at + 30..at + 30 + le16(at + 26)];
        assert_eq!(name, zipout::DICTIONARY_NAME.as_bytes());
        let frame = at + 30 + le16(at + 26) + le16(at + 28);
        zstd::bulk::decompress(&zip_bytes[frame..frame + le32(at + 18)], le32(at + 22)).unwrap()
    });
    let decoded = match le16(block + 8) as u16 {
        93 => match &dictionary {
            Some(d) => zstd::bulk::Decompressor::with_dictionary(d)
                .unwrap()
                .decompress(packed, le32(block + 22))
                .unwrap(),
            None => zstd::bulk::decompress(packed, le32(block + 22)).unwrap(),
        },
        zipout::LZ4_METHOD => lz4::block::decompress(packed, Some(le32(block + 22) as i32)).unwrap(),
        m => panic!("a block of method {m}"),
    };
    assert_eq!(decoded.len(), le32(block + 22));
    assert_eq!(crc32fast::hash(&decoded), le32(block + 14) as u32, "the block's CRC-32");
    decoded[start..start + size].to_vec()
}

#[test]
fn solid_zstd_puts_unlisted_pyc_into_blocks_and_keeps_the_rest_readable() {
    // 48 modules of 16 KiB, each different: twelve blocks of 64 KiB.
    let mut seed = 7u64;
    let mut module = |i: usize| -> String {
        let own = i.to_string();
        let mut text = String::new();
        while text.len() < 16384 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            text.push_str(["def ", "return ", "self", "import ", "\n", "name", &own][(seed >> 60) as usize % 7]);
        }
        text.truncate(16384);
        text
    };
    let modules: Vec<(String, String)> = (0..48).map(|i| (format!("lib/pkg/m{i:02}.pyc"), module(i))).collect();
    let mut files: Vec<(&str, &str)> = modules.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    files.extend([
        ("lib/os.pyc", "os bytecode"),
        ("lib/grammar.txt", "data, deflated"),
        ("exe", "\x7fELF pretend executable"),
    ]);
    let t = tree(&files);
    let mut s = spec(&[]);
    s.hot = vec!["os.pyc".into()];
    let members = stdlib_members(&t.path().join("lib"), &s).ok().unwrap();
    let dest = t.path().join("fused");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::SolidZstd, false), &dest, "x")
        .ok()
        .unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    let mut blocks = Vec::new();
    let mut solid = 0;
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).unwrap();
        let name = f.name().to_string();
        match name.as_str() {
            "os.pyc" => assert_eq!(f.compression(), zip::CompressionMethod::Stored),
            "grammar.txt" => assert_eq!(f.compression(), zip::CompressionMethod::Deflated),
            "pkg/" => {}
            n if n.starts_with(zipout::SOLID_DIR) => {
                let h = f.header_start() as usize;
                assert_eq!(u16::from_le_bytes([bytes[h + 8], bytes[h + 9]]), 93, "{n}: zstd");
                blocks.push(f.compressed_size());
            }
            n => {
                let (_, text) = modules.iter().find(|(m, _)| m.strip_prefix("lib/") == Some(n)).expect(n);
                let got = solid_member_bytes(&bytes, f.header_start() as usize, f.size() as usize);
                assert_eq!(got, text.as_bytes(), "{n}");
                assert_eq!(f.crc32(), crc32fast::hash(&got), "{n}");
                assert_eq!(f.compressed_size(), 0, "{n}");
                solid += 1;
            }
        }
    }
    assert_eq!(solid, 48);
    assert_eq!(blocks.len(), 12, "{blocks:?}");
    let raw: u64 = 48 * 16384;
    assert!(blocks.iter().sum::<u64>() < raw / 2, "{blocks:?}");
    // The same inputs, the same bytes.
    let again = t.path().join("again");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::SolidZstd, false), &again, "x")
        .ok()
        .unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), bytes);
}

/// Enough modules for zstd blocks ([`zipout::DICTIONARY_FROM`]) and the spec's `dictionary`: a
/// dictionary trained on them comes first, every block is compressed with it and names it, the blocks come out smaller than
/// without it, and the same inputs give the same bytes (training included).
#[test]
fn zstd_blocks_share_a_dictionary_trained_on_their_modules() {
    // 96 modules of 16 KiB (1.5 MiB), built from the same words in different orders, as modules
    // share names and bytecode.
    let words = [
        "def ",
        "return ",
        "self.",
        "import ",
        "\n    ",
        "__init__",
        "LOAD_FAST",
        "CALL_FUNCTION ",
        "docstring of the module ",
        "raise ValueError(",
        "isinstance(",
        "for item in ",
    ];
    let mut seed = 11u64;
    let modules: Vec<(String, String)> = (0..96)
        .map(|i| {
            let mut text = format!("module {i}\n");
            while text.len() < 16384 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                text.push_str(words[(seed >> 59) as usize % words.len()]);
                if (seed >> 20).is_multiple_of(5) {
                    text.push_str(&(seed % 1000).to_string());
                }
            }
            text.truncate(16384);
            (format!("lib/pkg/m{i:02}.pyc"), text)
        })
        .collect();
    let mut files: Vec<(&str, &str)> = modules.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    files.push(("exe", "\x7fELF pretend executable"));
    let t = tree(&files);
    let members = stdlib_members(&t.path().join("lib"), &spec(&[])).ok().unwrap();
    let dest = t.path().join("fused");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::SolidZstd, true), &dest, "x")
        .ok()
        .unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    let (mut blocks, mut dictionary, mut solid) = (0u64, 0, 0);
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).unwrap();
        let name = f.name().to_string();
        if name == zipout::DICTIONARY_NAME {
            assert!(blocks == 0 && solid == 0, "the dictionary comes before the blocks");
            dictionary = f.size();
        } else if name.starts_with(zipout::SOLID_DIR) {
            let h = f.header_start() as usize;
            assert_eq!(u16::from_le_bytes([bytes[h + 28], bytes[h + 29]]), 8, "{name} names the dictionary");
            blocks += f.compressed_size();
        } else if !name.ends_with('/') {
            let (_, text) = modules.iter().find(|(m, _)| m.strip_prefix("lib/") == Some(&name)).expect(&name);
            assert_eq!(
                solid_member_bytes(&bytes, f.header_start() as usize, f.size() as usize),
                text.as_bytes()
            );
            solid += 1;
        }
    }
    assert_eq!(solid, 96);
    assert!(dictionary > 0 && dictionary <= zipout::DICTIONARY_MAX as u64, "{dictionary}");
    // The same blocks without a dictionary: one frame per 64 KiB, as zipout writes them.
    let plain: usize = modules
        .chunks(4)
        .map(|c| {
            let block: String = c.iter().map(|(_, t)| t.as_str()).collect();
            zstd::bulk::compress(block.as_bytes(), 19).unwrap().len()
        })
        .sum();
    assert!((blocks as usize) < plain, "with the dictionary {blocks}, without {plain}");
    let again = t.path().join("again");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::SolidZstd, true), &again, "x")
        .ok()
        .unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), bytes, "the same inputs, the same bytes");
    // Not asked for: no dictionary, and the blocks name none.
    let plain_zip = t.path().join("plain");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::SolidZstd, false), &plain_zip, "x")
        .ok()
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&plain_zip).unwrap()).unwrap();
    assert!(archive.by_name(zipout::DICTIONARY_NAME).is_err());
}

/// A module larger than [`zipout::SOLID_MEMBER_MAX`] goes into no block (the zipimports refuse
/// blocks above 16 MiB): a deflated member of its own, hot or not.
#[test]
fn a_module_too_large_for_a_block_is_a_member_of_its_own() {
    let big = "x = 1\n".repeat((zipout::SOLID_MEMBER_MAX as usize) / 6 + 1);
    let t = tree(&[
        ("lib/big.pyc", big.as_str()),
        ("lib/hot.pyc", big.as_str()),
        ("lib/small.pyc", "small"),
        ("exe", "\x7fELF"),
    ]);
    let mut s = spec(&[]);
    s.hot = vec!["hot.pyc".into()];
    let members = stdlib_members(&t.path().join("lib"), &s).ok().unwrap();
    let dest = t.path().join("fused");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::SolidLz4Zstd, false), &dest, "x")
        .ok()
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    for (name, method) in [("big.pyc", 8), ("hot.pyc", 0), ("small.pyc", zipout::SOLID_METHOD)] {
        let i = archive.index_for_name(name).unwrap();
        let f = archive.by_index_raw(i).unwrap();
        let header = f.header_start() as usize;
        assert_eq!(u16::from_le_bytes([bytes[header + 8], bytes[header + 9]]), method, "{name}");
    }
}

/// `solid-lz4-zstd`: the `hot` modules go first, into LZ4 blocks, in the order `hot` lists them
/// (by name below a directory it names); the other modules into zstd blocks after them; `hot`
/// files that are not modules stay stored, other files deflated.
#[test]
fn solid_lz4_zstd_puts_hot_modules_first_in_lz4_blocks_in_their_order() {
    let body = |name: &str| format!("{name} bytecode ").repeat(3000);
    let names = [
        "lib/site.pyc",
        "lib/enc/a.pyc",
        "lib/enc/b.pyc",
        "lib/zz.pyc",
        "lib/cold.pyc",
        "lib/enc/data.txt",
        "lib/other.txt",
    ];
    let bodies: Vec<String> = names.iter().map(|n| body(n)).collect();
    let mut files: Vec<(&str, &str)> = names.iter().zip(&bodies).map(|(n, b)| (*n, b.as_str())).collect();
    files.push(("exe", "\x7fELF pretend executable"));
    let t = tree(&files);
    let mut s = spec(&[]);
    s.hot = vec!["zz.pyc".into(), "enc".into(), "site.pyc".into(), "not-there.pyc".into()];
    let members = stdlib_members(&t.path().join("lib"), &s).ok().unwrap();
    let dest = t.path().join("fused");
    write_binary(&t.path().join("exe"), &members, (ZipCompression::SolidLz4Zstd, false), &dest, "x")
        .ok()
        .unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    let le16 = |p: usize| u16::from_le_bytes([bytes[p], bytes[p + 1]]);
    let le32 = |p: usize| u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
    // Each solid module: its block's method and where its bytes start in the archive.
    let mut solid = Vec::new();
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).unwrap();
        let (name, h) = (f.name().to_string(), f.header_start() as usize);
        match name.as_str() {
            "enc/data.txt" => assert_eq!(f.compression(), zip::CompressionMethod::Stored),
            "other.txt" => assert_eq!(f.compression(), zip::CompressionMethod::Deflated),
            n if n.ends_with('/') || n.starts_with(zipout::SOLID_DIR) => {}
            n => {
                let got = solid_member_bytes(&bytes, h, f.size() as usize);
                assert_eq!(got, body(&format!("lib/{n}")).as_bytes(), "{n}");
                let extra = h + 30 + le16(h + 26) as usize;
                let block = h - le32(extra + 4);
                solid.push((h, n.to_string(), le16(block + 8)));
            }
        }
    }
    solid.sort();
    let lz4 = zipout::LZ4_METHOD;
    let order: Vec<(&str, u16)> = solid.iter().map(|(_, n, m)| (n.as_str(), *m)).collect();
    assert_eq!(
        order,
        [
            ("zz.pyc", lz4),
            ("enc/a.pyc", lz4),
            ("enc/b.pyc", lz4),
            ("site.pyc", lz4),
            ("cold.pyc", 93)
        ],
        "hot modules first, in the order of `hot`, in LZ4 blocks; the rest in zstd blocks"
    );
}
