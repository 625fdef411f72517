//! The stdlib ZIP's writer. Written here rather than with the `zip` crate because solid members
//! (below) have a compression method and a local extra field of spy's own, which that crate
//! cannot write; everything else is plain ZIP (no ZIP64: spy's stdlib ZIPs are far below 4 GiB
//! and 65,535 entries, and anything above is an error).
//!
//! **Solid members.** Deflate compresses each member alone, and most of a `.pyc` is what other
//! `.pyc` files hold too (names, docstrings' words, bytecode sequences). Members that start-up and
//! common imports never read are therefore written as a run of *blocks*: each block is a member of
//! method 93 (zstd) named `.spy-solid/NNNN.zst`, one zstd frame of several members' bytes one after
//! another, and each of those members is a local header of method [`SOLID_METHOD`] with no data of
//! its own and an extra field [`SOLID_EXTRA_ID`]: the distance back from its own local header to
//! its block's, then where its bytes start in the block's. The central directory lists it as usual
//! (its CRC-32 and uncompressed size are its own, its compressed size 0), so zipimport finds it as
//! any other member; the single-file zipimport (graph/python/spy-solid-zip.patch) decodes the
//! block, keeps the last one, and cuts the member out. Other ZIP readers list such members and
//! refuse to extract them (an unknown method), never returning wrong bytes; a reader with zstd
//! extracts the blocks.
//!
//! zstd rather than xz, measured on python3.11's 547 cold modules (8.25 MB; deflated one by one
//! 2.74 MB): 256 KiB blocks take 2.08 MB in zstd at level 19 and 1.95 MB in xz, but zstd decodes a
//! block in 0.25 ms and xz in 2.9 ms, which made a set of cold imports 2.4 times slower.
//!
//! **The dictionary.** When asked (the fuse spec's `dictionary`), before its first zstd block the
//! ZIP holds, if the modules to go into zstd blocks are enough to train one
//! ([`DICTIONARY_FROM`]), a zstd dictionary trained on them
//! ([`DICTIONARY_NAME`], a member of method 93: the dictionary as a zstd frame of its own), and
//! every zstd block is compressed with it: what a 64 KiB block cannot find in itself (the names,
//! docstrings' words and bytecode sequences every module has) it finds there. Each such block's
//! local header has an extra field [`SOLID_EXTRA_ID`] of 4 bytes: the distance back from its own
//! local header to the dictionary's. Measured on stacklessco2.7's 779 cold modules (7.8 MB): 64
//! KiB blocks 2.29 MB, with a 256 KiB dictionary 1.92 MB and the dictionary's 98 KB (256 KiB
//! blocks without one: 2.13 MB, for cold imports that decode four times as much).
//!
//! **LZ4 blocks.** The modules start-up and common imports read (the spec's `hot`) can go into
//! blocks too, of method [`LZ4_METHOD`] (`.spy-solid/NNNN.lz4`, one block of LZ4's block format),
//! in the order they are read: every such run decodes them all, and LZ4 does that five times
//! faster than zstd (python3.11's 2.7 MB of them in 64 KiB blocks: 0.99 MB and 0.7 ms, against
//! 0.78 MB and 4.1 ms in zstd; in blocks of up to 120 KiB, [`LZ4_BLOCK_MAX`], 0.94 MB).

use std::io::{self, Read, Seek, SeekFrom, Write};

/// The compression method of a member whose bytes are in a solid block (not a registered ZIP
/// method: "Sp").
pub const SOLID_METHOD: u16 = 0x7053;
/// The local extra field of a solid member: u32 distance back to its block's local header, u32
/// offset of its bytes in the block's decompressed bytes.
pub const SOLID_EXTRA_ID: u16 = 0x7053;
/// Uncompressed bytes per block, at least (a block closes with the member that reaches it). An
/// import of a module from a block not yet read decodes the whole block, and a program's cold
/// imports touch many blocks: python3.11's 547 cold modules take 2.33 MB in 64 KiB blocks, 2.08 MB
/// in 256 KiB ones (deflated one by one: 2.74 MB), but two sets of cold imports took 3–5 % longer
/// than from deflated members with 64 KiB blocks, 18–20 % longer with 256 KiB ones.
pub const SOLID_BLOCK: u64 = 64 << 10;
/// The largest module that goes into a block: the single-file zipimports refuse blocks above 16
/// MiB (a damaged archive's sizes are not allocated), and a block is at most a module more than
/// [`SOLID_BLOCK`]. A larger one is a member of its own.
pub const SOLID_MEMBER_MAX: u64 = 8 << 20;
/// The folder of the blocks: a name no module can have.
pub const SOLID_DIR: &str = ".spy-solid/";
/// The member holding the dictionary of the zstd blocks.
pub const DICTIONARY_NAME: &str = ".spy-solid/zstd.dict";
/// The dictionary's size, at most. On stacklessco2.7's cold modules in 64 KiB blocks, with the
/// dictionary compressed: 112 KiB (zstd's default) 2.075 MB, 192 KiB 2.034 MB, 256 KiB 2.018 MB;
/// loading it for the first block costs a fraction of a millisecond once.
pub const DICTIONARY_MAX: usize = 256 << 10;
/// Bytes of modules for zstd blocks below which no dictionary is trained: the dictionary would
/// take more room than it saves.
pub const DICTIONARY_FROM: u64 = 1 << 20;
/// Bytes of modules a dictionary is trained on, at most (the first ones in order): training holds
/// them in memory.
const DICTIONARY_SAMPLES_MAX: u64 = 24 << 20;
/// The compression method of an LZ4 block (one block of LZ4's block format; not a registered ZIP
/// method: "Lp").
pub const LZ4_METHOD: u16 = 0x704c;
/// LZ4's high-compression level for its blocks: its highest (the decoder's speed does not depend
/// on it).
const LZ4_LEVEL: i32 = 12;
/// Uncompressed bytes per LZ4 block, at most (but for a member larger than that alone): a
/// block's bytes are one allocation, and musl's malloc maps anything above 128 KiB afresh, whose
/// page faults halved the decoder's speed (python3.11's hot modules: 1.6 GB/s in blocks of 64 KiB
/// and more, 4 GB/s kept below 128 KiB). Larger blocks than 64 KiB also compress better: 0.94 MB
/// against 0.99 MB for the same 2.7 MB.
pub const LZ4_BLOCK_MAX: u64 = 120 << 10;

/// How a run of solid members' block is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCodec {
    /// One zstd frame (method 93), level 19: the smallest, decoded at about 0.7 GB/s here.
    Zstd,
    /// One LZ4 block ([`LZ4_METHOD`]), high compression: a fifth larger than zstd's, decoded at
    /// about 4 GB/s; for the modules every run of a common program reads.
    Lz4,
}

const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const END_SIGNATURE: u32 = 0x0605_4b50;
/// 1980-01-01 00:00 (MS-DOS date and time), what every member is dated.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;
/// Made by Unix (3), ZIP 2.0.
const VERSION_MADE_BY: u16 = (3 << 8) | 20;
const VERSION_NEEDED: u16 = 20;
const FLAG_UTF8: u16 = 0x800;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;
/// Zstandard (APPNOTE 6.3.8): a solid block.
const ZSTD: u16 = 93;

/// How a file member's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Stored,
    Deflated,
    /// One zstd frame (method 93), as the blocks' dictionary is written.
    Zstd,
}

struct CentralEntry {
    name: String,
    method: u16,
    crc: u32,
    compressed: u32,
    size: u32,
    offset: u32,
    mode: u32,
}

/// A ZIP written to `out` from its current position; offsets are counted from the start of `out`
/// (the executable's bytes before the ZIP included, as `zip -A` makes them).
pub struct ZipOut<W: Write + Seek> {
    out: W,
    entries: Vec<CentralEntry>,
    blocks: usize,
    /// Whether zstd blocks get a trained dictionary, and whether one was written.
    dictionary: bool,
    wrote_dictionary: bool,
}

fn too_big(what: &str) -> io::Error {
    io::Error::other(format!("{what} does not fit a ZIP without ZIP64 (4 GiB, 65,535 entries)"))
}

fn u32_of(n: u64, what: &str) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| too_big(what))
}

fn u16_of(n: usize, what: &str) -> io::Result<u16> {
    u16::try_from(n).map_err(|_| too_big(what))
}

/// A reader or writer that counts and checksums the bytes that pass through it.
struct Checked<T> {
    inner: T,
    bytes: u64,
    crc: crc32fast::Hasher,
}

impl<T> Checked<T> {
    fn new(inner: T) -> Self {
        Checked {
            inner,
            bytes: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    fn seen(&mut self, buf: &[u8]) {
        self.bytes += buf.len() as u64;
        self.crc.update(buf);
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.seen(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write + Seek> ZipOut<W> {
    /// `dictionary`: whether the zstd blocks get a dictionary trained on their modules (when
    /// they are enough to train one).
    pub fn new(out: W, dictionary: bool) -> Self {
        ZipOut {
            out,
            entries: Vec::new(),
            blocks: 0,
            dictionary,
            wrote_dictionary: false,
        }
    }

    /// Whether the zstd blocks have a dictionary.
    pub fn wrote_dictionary(&self) -> bool {
        self.wrote_dictionary
    }

    /// Writes a member's local header and records its central-directory entry.
    fn local_header(&mut self, entry: CentralEntry, extra: &[u8]) -> io::Result<()> {
        let name = entry.name.as_str();
        let mut h = Vec::with_capacity(30 + name.len() + extra.len());
        h.extend_from_slice(&LOCAL_SIGNATURE.to_le_bytes());
        h.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
        h.extend_from_slice(&flags(name).to_le_bytes());
        h.extend_from_slice(&entry.method.to_le_bytes());
        h.extend_from_slice(&DOS_TIME.to_le_bytes());
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&entry.crc.to_le_bytes());
        h.extend_from_slice(&entry.compressed.to_le_bytes());
        h.extend_from_slice(&entry.size.to_le_bytes());
        h.extend_from_slice(&u16_of(name.len(), name)?.to_le_bytes());
        h.extend_from_slice(&u16_of(extra.len(), name)?.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(extra);
        self.out.write_all(&h)?;
        self.entries.push(entry);
        Ok(())
    }

    /// A member whose CRC-32 and sizes are known once its data is written (0 until then).
    fn entry(&mut self, name: String, method: u16, mode: u32) -> io::Result<CentralEntry> {
        let offset = u32_of(self.out.stream_position()?, "the ZIP")?;
        Ok(CentralEntry {
            name,
            method,
            crc: 0,
            compressed: 0,
            size: 0,
            offset,
            mode,
        })
    }

    /// Sets the CRC-32 and sizes of the member written last, in its local header (then returns to
    /// the end) and its central-directory entry.
    fn finish_last(&mut self, crc: u32, compressed: u64, size: u64) -> io::Result<()> {
        let last = self.entries.last_mut().expect("a member was started");
        let (compressed, size) = (u32_of(compressed, &last.name)?, u32_of(size, &last.name)?);
        (last.crc, last.compressed, last.size) = (crc, compressed, size);
        let header = u64::from(last.offset);
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(header + 14))?;
        let mut fields = [0u8; 12];
        fields[..4].copy_from_slice(&crc.to_le_bytes());
        fields[4..8].copy_from_slice(&compressed.to_le_bytes());
        fields[8..].copy_from_slice(&size.to_le_bytes());
        self.out.write_all(&fields)?;
        self.out.seek(SeekFrom::Start(end))?;
        Ok(())
    }

    /// A directory (`name` without its trailing `/`).
    pub fn add_directory(&mut self, name: &str) -> io::Result<()> {
        let entry = self.entry(format!("{name}/"), STORED, 0o040755)?;
        self.local_header(entry, &[])
    }

    /// A file member, its bytes streamed from `src`.
    pub fn add_file(&mut self, name: &str, method: Method, src: &mut impl Read) -> io::Result<()> {
        let code = match method {
            Method::Stored => STORED,
            Method::Deflated => DEFLATED,
            Method::Zstd => ZSTD,
        };
        let entry = self.entry(name.to_string(), code, 0o100644)?;
        self.local_header(entry, &[])?;
        let data_start = self.out.stream_position()?;
        let (crc, size) = match method {
            Method::Stored => {
                let mut w = Checked::new(&mut self.out);
                io::copy(src, &mut w)?;
                (w.crc.finalize(), w.bytes)
            }
            Method::Deflated => {
                let mut src = Checked::new(src);
                let mut enc = flate2::write::DeflateEncoder::new(&mut self.out, flate2::Compression::best());
                io::copy(&mut src, &mut enc)?;
                enc.finish()?;
                (src.crc.finalize(), src.bytes)
            }
            Method::Zstd => {
                let mut src = Checked::new(src);
                let mut enc = zstd_encoder(&mut self.out, None)?;
                io::copy(&mut src, &mut enc)?;
                enc.finish()?;
                (src.crc.finalize(), src.bytes)
            }
        };
        let compressed = self.out.stream_position()? - data_start;
        self.finish_last(crc, compressed, size)
    }

    /// Solid members, in the order they share blocks: `(name, file)` pairs, each file's bytes
    /// going into the current block until it is full ([`fill_block`]); the members' local headers
    /// follow their block. A zstd block is streamed into its frame; an LZ4 block (LZ4's block
    /// format has no streaming form) is gathered first: at most [`LZ4_BLOCK_MAX`] bytes, or one
    /// member's.
    pub fn add_solid(&mut self, members: &[(&str, &std::path::Path)], codec: BlockCodec) -> io::Result<()> {
        let dictionary = match codec {
            BlockCodec::Zstd if self.dictionary && !self.wrote_dictionary => self.add_dictionary(members)?,
            _ => None,
        };
        let mut rest = members;
        while !rest.is_empty() {
            let (suffix, method) = match codec {
                BlockCodec::Zstd => ("zst", ZSTD),
                BlockCodec::Lz4 => ("lz4", LZ4_METHOD),
            };
            let block_entry = self.entry(format!("{SOLID_DIR}{:04}.{suffix}", self.blocks), method, 0o100644)?;
            self.blocks += 1;
            let header = block_entry.offset;
            let mut block_extra = Vec::new();
            if let Some((dictionary_header, _)) = &dictionary {
                block_extra.extend_from_slice(&SOLID_EXTRA_ID.to_le_bytes());
                block_extra.extend_from_slice(&4u16.to_le_bytes());
                block_extra.extend_from_slice(&(header - dictionary_header).to_le_bytes());
            }
            self.local_header(block_entry, &block_extra)?;
            let data_start = self.out.stream_position()?;
            let mut in_block = Vec::new();
            let (crc, size) = match codec {
                BlockCodec::Zstd => {
                    let trained = dictionary.as_ref().map(|(_, d)| d.as_slice());
                    let mut block = Checked::new(zstd_encoder(&mut self.out, trained)?);
                    fill_block(&mut rest, codec, &mut block, &mut in_block)?;
                    let (crc, size) = (block.crc.finalize(), block.bytes);
                    block.inner.finish()?;
                    (crc, size)
                }
                BlockCodec::Lz4 => {
                    let mut block = Checked::new(Vec::new());
                    fill_block(&mut rest, codec, &mut block, &mut in_block)?;
                    let mode = lz4::block::CompressionMode::HIGHCOMPRESSION(LZ4_LEVEL);
                    self.out.write_all(&lz4::block::compress(&block.inner, Some(mode), false)?)?;
                    (block.crc.finalize(), block.bytes)
                }
            };
            let compressed = self.out.stream_position()? - data_start;
            self.finish_last(crc, compressed, size)?;
            for (member, start, size, crc) in in_block {
                let mut entry = self.entry(member.to_string(), SOLID_METHOD, 0o100644)?;
                (entry.crc, entry.size) = (crc, size);
                let mut extra = Vec::with_capacity(12);
                extra.extend_from_slice(&SOLID_EXTRA_ID.to_le_bytes());
                extra.extend_from_slice(&8u16.to_le_bytes());
                extra.extend_from_slice(&(entry.offset - header).to_le_bytes());
                extra.extend_from_slice(&start.to_le_bytes());
                self.local_header(entry, &extra)?;
            }
        }
        Ok(())
    }

    /// Trains the zstd blocks' dictionary on `members` and writes it as [`DICTIONARY_NAME`];
    /// returns its local header's offset and its bytes, or nothing when the members are too few
    /// to train one ([`DICTIONARY_FROM`]) or zstd cannot train one from them.
    fn add_dictionary(&mut self, members: &[(&str, &std::path::Path)]) -> io::Result<Option<(u32, Vec<u8>)>> {
        let mut total = 0;
        for (_, path) in members {
            total += fs_err::metadata(path)?.len();
        }
        if total < DICTIONARY_FROM {
            return Ok(None);
        }
        let (mut samples, mut sizes) = (Vec::new(), Vec::new());
        for (_, path) in members {
            let before = samples.len();
            fs_err::File::open(path)?.read_to_end(&mut samples)?;
            sizes.push(samples.len() - before);
            if samples.len() as u64 >= DICTIONARY_SAMPLES_MAX {
                break;
            }
        }
        // Deterministic: zstd trains in one thread, on the same samples in the same order.
        let Ok(dictionary) = zstd::dict::from_continuous(&samples, &sizes, DICTIONARY_MAX) else {
            return Ok(None);
        };
        drop(samples);
        self.add_file(DICTIONARY_NAME, Method::Zstd, &mut dictionary.as_slice())?;
        let header = self.entries.last().expect("the dictionary was just added").offset;
        self.wrote_dictionary = true;
        Ok(Some((header, dictionary)))
    }

    /// Writes the central directory and its end; returns the writer, positioned at the ZIP's end.
    pub fn finish(mut self) -> io::Result<W> {
        let start = self.out.stream_position()?;
        let mut directory = Vec::new();
        for e in &self.entries {
            directory.extend_from_slice(&CENTRAL_SIGNATURE.to_le_bytes());
            directory.extend_from_slice(&VERSION_MADE_BY.to_le_bytes());
            directory.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
            directory.extend_from_slice(&flags(&e.name).to_le_bytes());
            directory.extend_from_slice(&e.method.to_le_bytes());
            directory.extend_from_slice(&DOS_TIME.to_le_bytes());
            directory.extend_from_slice(&DOS_DATE.to_le_bytes());
            directory.extend_from_slice(&e.crc.to_le_bytes());
            directory.extend_from_slice(&e.compressed.to_le_bytes());
            directory.extend_from_slice(&e.size.to_le_bytes());
            directory.extend_from_slice(&u16_of(e.name.len(), &e.name)?.to_le_bytes());
            directory.extend_from_slice(&[0; 8]); // extra and comment lengths, disk, internal attributes
            directory.extend_from_slice(&(e.mode << 16).to_le_bytes());
            directory.extend_from_slice(&e.offset.to_le_bytes());
            directory.extend_from_slice(e.name.as_bytes());
        }
        self.out.write_all(&directory)?;
        let count = u16_of(self.entries.len(), "the number of members")?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&END_SIGNATURE.to_le_bytes());
        end.extend_from_slice(&[0; 4]); // this disk, the directory's disk
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&u32_of(directory.len() as u64, "the central directory")?.to_le_bytes());
        end.extend_from_slice(&u32_of(start, "the ZIP")?.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes()); // comment length
        self.out.write_all(&end)?;
        Ok(self.out)
    }
}

/// A solid member in its block: name, where its bytes start in the block's, their size and CRC-32.
type InBlock<'a> = (&'a str, u32, u32, u32);

/// Moves members from the front of `rest` into `block`: for zstd until it holds [`SOLID_BLOCK`]
/// bytes or more (a block closes with the member that reaches it), for LZ4 while the next member
/// keeps it within [`LZ4_BLOCK_MAX`] (a larger member goes alone).
fn fill_block<'a, W: Write>(
    rest: &mut &[(&'a str, &std::path::Path)],
    codec: BlockCodec,
    block: &mut Checked<W>,
    in_block: &mut Vec<InBlock<'a>>,
) -> io::Result<()> {
    while let Some(((member, path), tail)) = rest.split_first() {
        let start = block.bytes;
        let src = fs_err::File::open(path)?;
        let full = match codec {
            BlockCodec::Zstd => start >= SOLID_BLOCK,
            BlockCodec::Lz4 => start > 0 && start + src.metadata()?.len() > LZ4_BLOCK_MAX,
        };
        if full {
            break;
        }
        *rest = tail;
        let mut src = Checked::new(src);
        io::copy(&mut src, block)?;
        in_block.push((member, u32_of(start, member)?, u32_of(src.bytes, member)?, src.crc.finalize()));
    }
    Ok(())
}

fn flags(name: &str) -> u16 {
    if name.is_ascii() {
        0
    } else {
        FLAG_UTF8
    }
}

/// The zstd encoder of a solid block: level 19 in one thread (the same bytes on every machine, for
/// the zstd the crate builds), with windows and tables for a block of about 1 MiB at most: level
/// 19's own (8 MiB of window, 64 MiB of chain table) would take most of spy's memory budget for
/// nothing, a block being smaller. No checksum: the ZIP's CRC-32 covers the block. With the
/// blocks' dictionary when there is one (its id is in each frame's header).
fn zstd_encoder<'d, W: Write>(out: W, dictionary: Option<&'d [u8]>) -> io::Result<zstd::stream::write::Encoder<'d, W>> {
    use zstd::stream::raw::CParameter;
    let mut encoder = match dictionary {
        Some(d) => zstd::stream::write::Encoder::with_dictionary(out, 19, d)?,
        None => zstd::stream::write::Encoder::new(out, 19)?,
    };
    for p in [CParameter::WindowLog(20), CParameter::ChainLog(20), CParameter::HashLog(20)] {
        encoder.set_parameter(p)?;
    }
    encoder.include_checksum(false)?;
    Ok(encoder)
}
