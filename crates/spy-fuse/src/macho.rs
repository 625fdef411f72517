//! Mach-O single files (macOS). A signed Mach-O must end with its code signature, inside
//! `__LINKEDIT`: macOS refuses data after it, and arm64 Macs run no unsigned code. So the stdlib
//! ZIP goes *into* `__LINKEDIT`, after the image's own link-edit data and before a new ad-hoc
//! signature that covers every byte before it:
//!
//! ```text
//! [ header, load commands, __TEXT, __DATA..., __LINKEDIT: link-edit data | ZIP | signature ]
//! ```
//!
//! `__LINKEDIT` grows to the end of the file, the string table (the last link-edit data a linker
//! writes) grows over the ZIP so that every byte of the segment belongs to a load command (what
//! `codesign --strict` asks; the PyInstaller approach), and `LC_CODE_SIGNATURE` names the new
//! signature. The interpreter finds its ZIP ending where the signature begins (the darwin patches
//! of getpath and zipimport). The ZIP ends on the signature's 16-byte alignment: its comment
//! carries the few padding bytes, so it is a well-formed ZIP with its offsets counted from the
//! start of the file.
//!
//! The signature is what Apple's linker writes for every arm64 executable (and zig's, measured:
//! same bytes for the same input): a SuperBlob holding one CodeDirectory, version 0x20400,
//! `adhoc | linker-signed`, SHA-256 over pages of 16 KiB on arm64 (the kernel's page size there)
//! and 4 KiB on x86_64, no special slots, the main binary's executable segment (`__TEXT`) named. Written here by hand: it is about a hundred lines, where the
//! apple-codesign crate would bring a large dependency tree for this one blob.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

pub const MH_MAGIC_64: u32 = 0xfeed_facf;
const LC_SEGMENT_64: u32 = 0x19;
const LC_SYMTAB: u32 = 0x2;
const LC_CODE_SIGNATURE: u32 = 0x1d;
const MH_EXECUTE: u32 = 0x2;
pub const CPU_TYPE_X86_64: u32 = 0x0100_0007;
pub const CPU_TYPE_ARM64: u32 = 0x0100_000c;

const CSMAGIC_EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
const CSMAGIC_CODEDIRECTORY: u32 = 0xfade_0c02;
const CSSLOT_CODEDIRECTORY: u32 = 0;
const CS_ADHOC: u32 = 0x2;
const CS_LINKER_SIGNED: u32 = 0x2_0000;
const CS_HASHTYPE_SHA256: u8 = 2;
const CS_EXECSEG_MAIN_BINARY: u64 = 0x1;
const CODE_DIRECTORY_VERSION: u32 = 0x20400;
/// Header of a version 0x20400 CodeDirectory, up to and including the exec segment fields.
const CODE_DIRECTORY_HEADER: usize = 88;
const HASH_SIZE: usize = 32;
const SIGNATURE_ALIGN: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum MachOError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a 64-bit little-endian Mach-O file")]
    NotMachO,
    #[error("malformed Mach-O: {0}")]
    Malformed(String),
    #[error("cannot make it a single file: {0}")]
    Unsupported(String),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn align(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// A segment load command: where it is among the load commands, and what it says.
#[derive(Debug, Clone, Copy)]
struct Segment {
    at: usize,
    vmsize: u64,
    fileoff: u64,
    filesize: u64,
}

/// What the single-file layout needs to know of an executable: its header and load commands
/// (read into memory, a few KiB; the rest of the file is only ever streamed).
#[derive(Debug, Clone)]
pub struct Image {
    /// The Mach-O header and its load commands.
    head: Vec<u8>,
    pub cputype: u32,
    file_len: u64,
    text: Segment,
    linkedit: Segment,
    /// `LC_SYMTAB`: where it is, the string table's offset and size.
    symtab: Option<(usize, u32, u32)>,
    /// `LC_CODE_SIGNATURE`: where it is, the signature's offset and size.
    signature: Option<(usize, u32, u32)>,
    /// Lowest file offset of any section's contents: load commands may grow up to there.
    first_section: u64,
}

impl Image {
    pub fn read(file: &mut File) -> Result<Image, MachOError> {
        let file_len = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        let mut header = [0u8; 32];
        if file_len < 32 {
            return Err(MachOError::NotMachO);
        }
        file.read_exact(&mut header)?;
        if u32_at(&header, 0) != MH_MAGIC_64 {
            return Err(MachOError::NotMachO);
        }
        let cputype = u32_at(&header, 4);
        let filetype = u32_at(&header, 12);
        let ncmds = u32_at(&header, 16) as usize;
        let sizeofcmds = u32_at(&header, 20) as usize;
        if filetype != MH_EXECUTE {
            return Err(MachOError::Unsupported(format!("file type {filetype} is not an executable")));
        }
        if 32 + sizeofcmds as u64 > file_len || sizeofcmds > 1 << 20 {
            return Err(MachOError::Malformed(format!("load commands of {sizeofcmds} bytes")));
        }
        let mut head = header.to_vec();
        head.resize(32 + sizeofcmds, 0);
        file.read_exact(&mut head[32..])?;

        let (mut text, mut linkedit, mut symtab, mut signature) = (None, None, None, None);
        let mut first_section = file_len;
        let mut at = 32;
        for i in 0..ncmds {
            if at + 8 > head.len() {
                return Err(MachOError::Malformed(format!("load command {i} runs past the load commands")));
            }
            let (cmd, size) = (u32_at(&head, at), u32_at(&head, at + 4) as usize);
            if size < 8 || at + size > head.len() {
                return Err(MachOError::Malformed(format!("load command {i} has size {size}")));
            }
            let need = |n: usize| {
                if size < n {
                    Err(MachOError::Malformed(format!("load command {i} ({cmd:#x}) is {size} bytes")))
                } else {
                    Ok(())
                }
            };
            match cmd {
                LC_SEGMENT_64 => {
                    need(72)?;
                    let name = &head[at + 8..at + 24];
                    let seg = Segment {
                        at,
                        vmsize: u64_at(&head, at + 32),
                        fileoff: u64_at(&head, at + 40),
                        filesize: u64_at(&head, at + 48),
                    };
                    let nsects = u32_at(&head, at + 64) as usize;
                    need(72 + nsects * 80)?;
                    for s in 0..nsects {
                        let sect = at + 72 + s * 80;
                        let (size, offset) = (u64_at(&head, sect + 40), u32_at(&head, sect + 48) as u64);
                        // Zero-fill sections (bss) have no file offset.
                        if size > 0 && offset > 0 {
                            first_section = first_section.min(offset);
                        }
                    }
                    if name.starts_with(b"__TEXT\0") {
                        text = Some(seg);
                    } else if name.starts_with(b"__LINKEDIT\0") {
                        linkedit = Some(seg);
                    }
                }
                LC_SYMTAB => {
                    need(24)?;
                    symtab = Some((at, u32_at(&head, at + 16), u32_at(&head, at + 20)));
                }
                LC_CODE_SIGNATURE => {
                    need(16)?;
                    signature = Some((at, u32_at(&head, at + 8), u32_at(&head, at + 12)));
                }
                _ => {}
            }
            at += size;
        }
        let text = text.ok_or_else(|| MachOError::Malformed("no __TEXT segment".into()))?;
        let linkedit = linkedit.ok_or_else(|| MachOError::Malformed("no __LINKEDIT segment".into()))?;
        if linkedit.fileoff + linkedit.filesize != file_len {
            return Err(MachOError::Unsupported(format!(
                "__LINKEDIT ends at {} but the file at {file_len}: data follows it already",
                linkedit.fileoff + linkedit.filesize
            )));
        }
        if let Some((_, off, size)) = signature {
            if off as u64 + size as u64 > file_len || (off as u64) < linkedit.fileoff {
                return Err(MachOError::Malformed(format!(
                    "code signature at {off}+{size} is outside __LINKEDIT"
                )));
            }
        }
        Ok(Image {
            head,
            cputype,
            file_len,
            text,
            linkedit,
            symtab,
            signature,
            first_section,
        })
    }

    /// Where the executable's own bytes end: its old signature (replaced) starts there.
    pub fn content_end(&self) -> u64 {
        self.signature.map_or(self.file_len, |(_, off, _)| off as u64)
    }

    /// The segment alignment the linker used: 16 KiB on arm64, 4 KiB on x86_64.
    fn segment_page(&self) -> u64 {
        1 << self.page_shift()
    }

    fn signed(&self, offset: u64, size: u64, identifier: &str, string_table_extended: bool) -> Signed {
        Signed {
            offset,
            size,
            pages: offset.div_ceil(self.segment_page()),
            page_size: self.segment_page(),
            identifier: identifier.to_string(),
            string_table_extended,
        }
    }

    /// log2 of the page size: of segments, and of the pages the signature hashes (what zig's and
    /// Apple's linkers use).
    fn page_shift(&self) -> u8 {
        if self.cputype == CPU_TYPE_ARM64 {
            14
        } else {
            12
        }
    }
}

/// What [`finish`] did, for the manifest.
#[derive(Debug, Clone)]
pub struct Signed {
    pub offset: u64,
    pub size: u64,
    pub pages: u64,
    pub page_size: u64,
    pub identifier: String,
    /// Whether the string table now spans the ZIP (it was the last link-edit data).
    pub string_table_extended: bool,
}

/// The size of the SuperBlob [`code_signature`] makes for `code_limit` bytes.
fn signature_size(code_limit: u64, identifier: &str, page_shift: u8) -> u64 {
    let pages = code_limit.div_ceil(1 << page_shift);
    let cd = CODE_DIRECTORY_HEADER as u64 + identifier.len() as u64 + 1 + pages * HASH_SIZE as u64;
    12 + 8 + cd
}

/// Ad-hoc signs `file`'s first `code_limit` bytes (whose header is already final): returns the
/// SuperBlob to write at `code_limit`. Reads the file page by page.
fn code_signature(file: &mut File, code_limit: u64, identifier: &str, image: &Image) -> io::Result<Vec<u8>> {
    let (text, page_shift) = (image.text, image.page_shift());
    let page_size = 1usize << page_shift;
    let pages = code_limit.div_ceil(page_size as u64) as usize;
    let ident_at = CODE_DIRECTORY_HEADER;
    let hash_at = ident_at + identifier.len() + 1;
    let cd_len = hash_at + pages * HASH_SIZE;
    let mut cd = vec![0u8; cd_len];
    let be32 = |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let be64 = |b: &mut [u8], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_be_bytes());
    be32(&mut cd, 0, CSMAGIC_CODEDIRECTORY);
    be32(&mut cd, 4, cd_len as u32);
    be32(&mut cd, 8, CODE_DIRECTORY_VERSION);
    be32(&mut cd, 12, CS_ADHOC | CS_LINKER_SIGNED);
    be32(&mut cd, 16, hash_at as u32);
    be32(&mut cd, 20, ident_at as u32);
    be32(&mut cd, 24, 0); // special slots
    be32(&mut cd, 28, pages as u32);
    // codeLimit is 32 bits (codeLimit64, at 56, is for larger files).
    be32(
        &mut cd,
        32,
        u32::try_from(code_limit).map_err(|_| io::Error::other("a signed file over 4 GiB"))?,
    );
    cd[36] = HASH_SIZE as u8;
    cd[37] = CS_HASHTYPE_SHA256;
    cd[38] = 0; // platform
    cd[39] = page_shift;
    // 40 spare2, 44 scatterOffset, 48 teamOffset, 52 spare3, 56 codeLimit64: zero.
    be64(&mut cd, 64, text.fileoff);
    be64(&mut cd, 72, text.filesize);
    be64(&mut cd, 80, CS_EXECSEG_MAIN_BINARY);
    cd[ident_at..ident_at + identifier.len()].copy_from_slice(identifier.as_bytes());

    file.seek(SeekFrom::Start(0))?;
    let mut reader = io::BufReader::with_capacity(1 << 16, (&mut *file).take(code_limit));
    let mut page = vec![0u8; page_size];
    for slot in 0..pages {
        let want = (code_limit - (slot * page_size) as u64).min(page_size as u64) as usize;
        reader.read_exact(&mut page[..want])?;
        let at = hash_at + slot * HASH_SIZE;
        cd[at..at + HASH_SIZE].copy_from_slice(&Sha256::digest(&page[..want]));
    }

    let mut blob = Vec::with_capacity(20 + cd_len);
    blob.extend_from_slice(&CSMAGIC_EMBEDDED_SIGNATURE.to_be_bytes());
    blob.extend_from_slice(&((20 + cd_len) as u32).to_be_bytes());
    blob.extend_from_slice(&1u32.to_be_bytes());
    blob.extend_from_slice(&CSSLOT_CODEDIRECTORY.to_be_bytes());
    blob.extend_from_slice(&20u32.to_be_bytes());
    blob.extend_from_slice(&cd);
    debug_assert_eq!(blob.len() as u64, signature_size(code_limit, identifier, page_shift));
    Ok(blob)
}

/// Step one: when `src` is a 64-bit Mach-O executable, copies its own bytes (without its old
/// signature) to `dest`, leaving `dest` positioned where the ZIP goes. `None`, with nothing
/// copied, when `src` is not Mach-O at all.
pub fn start(src: &mut File, dest: &mut File) -> Result<Option<Image>, MachOError> {
    let image = match Image::read(src) {
        Ok(image) => image,
        Err(MachOError::NotMachO) => return Ok(None),
        Err(e) => return Err(e),
    };
    src.seek(SeekFrom::Start(0))?;
    let copied = io::copy(&mut (&mut *src).take(image.content_end()), dest)?;
    if copied != image.content_end() {
        return Err(MachOError::Malformed("the executable ended early".into()));
    }
    Ok(Some(image))
}

/// Step two, after the ZIP was written to `dest` from [`Image::content_end`] to `zip_end`: pads
/// the ZIP (its comment) to the signature's alignment, grows `__LINKEDIT` and the string table over
/// it, points `LC_CODE_SIGNATURE` (added if the linker wrote none) at a new ad-hoc signature and
/// writes it. `identifier` names the code in the signature.
pub fn finish(image: &Image, dest: &mut File, zip_end: u64, identifier: &str) -> Result<Signed, MachOError> {
    let sig_off = align(zip_end, SIGNATURE_ALIGN);
    let pad = sig_off - zip_end;
    // The end-of-central-directory record the ZIP writer put last (22 bytes, no comment): its
    // comment length grows by the padding.
    let eocd = zip_end
        .checked_sub(22)
        .filter(|&e| e >= image.content_end())
        .ok_or_else(|| MachOError::Malformed("no ZIP after the executable".into()))?;
    let mut record = [0u8; 22];
    dest.seek(SeekFrom::Start(eocd))?;
    dest.read_exact(&mut record)?;
    if record[..4] != *b"PK\x05\x06" || record[20..22] != [0, 0] {
        return Err(MachOError::Malformed("the ZIP does not end with a comment-less end record".into()));
    }
    dest.seek(SeekFrom::Start(eocd + 20))?;
    dest.write_all(&(pad as u16).to_le_bytes())?;
    dest.seek(SeekFrom::Start(zip_end))?;
    dest.write_all(&vec![0u8; pad as usize])?;

    let size = signature_size(sig_off, identifier, image.page_shift());
    let mut head = image.head.clone();
    let sig_cmd = match image.signature {
        Some((at, _, _)) => at,
        None => {
            // A linker that did not sign left room after the load commands (macOS linkers
            // reserve header padding); 16 bytes of it become LC_CODE_SIGNATURE.
            let at = head.len();
            if image.first_section < at as u64 + 16 {
                return Err(MachOError::Unsupported(
                    "no LC_CODE_SIGNATURE and no room for one after the load commands (link with -headerpad)".into(),
                ));
            }
            let ncmds = u32_at(&head, 16);
            let sizeofcmds = u32_at(&head, 20);
            put_u32(&mut head, 16, ncmds + 1);
            put_u32(&mut head, 20, sizeofcmds + 16);
            head.extend_from_slice(&[0u8; 16]);
            put_u32(&mut head, at, LC_CODE_SIGNATURE);
            put_u32(&mut head, at + 4, 16);
            at
        }
    };
    let to_u32 = |v: u64, what: &str| u32::try_from(v).map_err(|_| MachOError::Unsupported(format!("{what} over 4 GiB")));
    put_u32(&mut head, sig_cmd + 8, to_u32(sig_off, "signature offset")?);
    put_u32(&mut head, sig_cmd + 12, to_u32(size, "signature size")?);
    let le = image.linkedit;
    let filesize = sig_off + size - le.fileoff;
    put_u64(&mut head, le.at + 48, filesize);
    put_u64(&mut head, le.at + 32, align(filesize, image.segment_page()).max(le.vmsize));
    let mut string_table_extended = false;
    if let Some((at, stroff, strsize)) = image.symtab {
        // The string table is last when only alignment padding separates it from the old end.
        let end = stroff as u64 + strsize as u64;
        if stroff > 0 && end <= image.content_end() && image.content_end() - end < SIGNATURE_ALIGN {
            put_u32(&mut head, at + 20, to_u32(sig_off - stroff as u64, "string table")?);
            string_table_extended = true;
        }
    }
    dest.seek(SeekFrom::Start(0))?;
    dest.write_all(&head)?;
    dest.flush()?;

    let blob = code_signature(dest, sig_off, identifier, image)?;
    dest.seek(SeekFrom::Start(sig_off))?;
    dest.write_all(&blob)?;
    dest.set_len(sig_off + size)?;
    dest.flush()?;
    Ok(image.signed(sig_off, size, identifier, string_table_extended))
}

/// Replaces the code signature of a signed executable in place by the one [`finish`] would write
/// for it (no ZIP, header untouched: the new signature must fit where the old one was). `spy`'s
/// tests compare it with the signature the linker wrote.
pub fn resign(path: &Path, identifier: &str) -> Result<Signed, MachOError> {
    let mut file = fs_err::OpenOptions::new().read(true).write(true).open(path)?;
    let image = Image::read(file.file_mut())?;
    let (_, off, room) = image.signature.ok_or_else(|| MachOError::Unsupported("not signed".into()))?;
    let size = signature_size(off as u64, identifier, image.page_shift());
    if size > room as u64 {
        return Err(MachOError::Unsupported(format!(
            "a {size}-byte signature does not fit in {room} bytes"
        )));
    }
    let mut blob = code_signature(file.file_mut(), off as u64, identifier, &image)?;
    blob.resize(room as usize, 0);
    file.seek(SeekFrom::Start(off as u64))?;
    file.write_all(&blob)?;
    Ok(image.signed(off as u64, size, identifier, false))
}
