// zip.js: builds a .zip archive in the browser, so code written in the
// wizard's editor can be uploaded to fetch_code like any archive. Entries are
// stored (method 0, no compression): the files are small source files, and
// storing needs nothing but CRC-32, computed here.

let table = null;

function crcTable() {
  if (table) return table;
  table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

// crc32 is the CRC-32 (IEEE, as zip and gzip use it) of a Uint8Array.
export function crc32(bytes) {
  const t = crcTable();
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// dosTime packs a date into the MS-DOS time and date fields zip uses.
function dosTime(d) {
  const year = Math.max(1980, d.getFullYear());
  return {
    time: (d.getHours() << 11) | (d.getMinutes() << 5) | Math.floor(d.getSeconds() / 2),
    date: ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
  };
}

// build returns a zip archive (Uint8Array) of files: [{name, data}], where
// data is a string (written as UTF-8) or a Uint8Array.
export function build(files, when) {
  const enc = new TextEncoder();
  const { time, date } = dosTime(when || new Date());
  const entries = files.map((f) => {
    const name = enc.encode(f.name);
    const data = typeof f.data === 'string' ? enc.encode(f.data) : f.data;
    return { name, data, crc: crc32(data) };
  });
  let size = 22;
  for (const e of entries) size += 30 + e.name.length + e.data.length + 46 + e.name.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let p = 0;
  const u16 = (v) => { view.setUint16(p, v, true); p += 2; };
  const u32 = (v) => { view.setUint32(p, v >>> 0, true); p += 4; };
  const bytes = (b) => { out.set(b, p); p += b.length; };
  for (const e of entries) {
    e.offset = p;
    u32(0x04034b50); // local file header
    u16(20); // version needed: 2.0
    u16(0x0800); // flags: names are UTF-8
    u16(0); // method: stored
    u16(time); u16(date);
    u32(e.crc); u32(e.data.length); u32(e.data.length);
    u16(e.name.length); u16(0);
    bytes(e.name);
    bytes(e.data);
  }
  const cdStart = p;
  for (const e of entries) {
    u32(0x02014b50); // central directory header
    u16((3 << 8) | 20); // made by: Unix, 2.0
    u16(20); u16(0x0800); u16(0);
    u16(time); u16(date);
    u32(e.crc); u32(e.data.length); u32(e.data.length);
    u16(e.name.length); u16(0); u16(0); // extra, comment
    u16(0); u16(0); // disk, internal attributes
    u32((0o100644 << 16) >>> 0); // external attributes: a regular file, rw-r--r--
    u32(e.offset);
    bytes(e.name);
  }
  const cdSize = p - cdStart;
  u32(0x06054b50); // end of central directory
  u16(0); u16(0);
  u16(entries.length); u16(entries.length);
  u32(cdSize); u32(cdStart);
  u16(0);
  return out;
}

// The browser tests build an archive in the page with AlgoZip
// (integration/browser_test.go); the pages import build.
window.AlgoZip = { crc32, build };
