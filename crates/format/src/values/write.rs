//! Writing elements as JSON text: per-code tables of the 16-bit and
//! smaller float types (exact when short, else the shortest decimal that
//! round-trips), ryu for F32 and F64, integers, BOOL, C64 pairs, and the
//! packing of sub-byte codes.

use super::*;

/// Shortest decimal for `v` such that `round_trips(decimal)` holds.
pub(super) fn shortest(v: f64, round_trips: impl Fn(f64) -> bool) -> String {
    let mut buf = ryu::Buffer::new();
    for digits in 1..=17 {
        let candidate: f64 = format!("{:.*e}", digits - 1, v)
            .parse()
            .expect("Rust formats parseable floats");
        if round_trips(candidate) {
            return buf.format(candidate).to_owned();
        }
    }
    buf.format(v).to_owned()
}

/// Every code of a 16-bit or smaller float type rendered once, so writing
/// is a table look-up.
pub(super) fn table(dtype: Dtype) -> &'static [Box<str>] {
    static TABLES: [OnceLock<Vec<Box<str>>>; 22] = [const { OnceLock::new() }; 22];
    let slot = Dtype::ALL
        .iter()
        .position(|&d| d == dtype)
        .expect("every dtype is in ALL");
    TABLES[slot].get_or_init(|| match dtype {
        Dtype::F16 => (0..=u16::MAX)
            .map(|c| {
                let x = f16::from_bits(c);
                float_text(x.to_f64(), c.into(), 0x7e00, 11, |w| f16_from_f64(w) == c)
            })
            .collect(),
        Dtype::BF16 => (0..=u16::MAX)
            .map(|c| {
                let x = bf16::from_bits(c);
                float_text(x.to_f64(), c.into(), 0x7fc0, 8, |w| bf16_from_f64(w) == c)
            })
            .collect(),
        _ => {
            let mini = Mini::of(dtype).expect("tables exist for 16-bit and smaller floats");
            (0..mini.codes())
                .map(|c| {
                    let canonical = mini.canonical_nan().map_or(u64::MAX, u64::from);
                    let precision = mini.man_bits + u32::from(mini.kind != MiniKind::E8m0);
                    float_text(mini.decode(c), c.into(), canonical, precision, |w| {
                        mini.encode(w) == Some(c)
                    })
                })
                .collect()
        }
    })
}

/// The text of one value of a float type whose significands have
/// `precision` bits (the implicit one included): its exact decimal when
/// that has no more significant digits than the type holds (f16 65504 is
/// `65504.0`, not `65500.0`), else the shortest that round-trips.
pub(super) fn float_text(
    v: f64,
    bits: u64,
    canonical_nan: u64,
    precision: u32,
    round_trips: impl Fn(f64) -> bool,
) -> Box<str> {
    if v.is_nan() {
        return nan_text(bits, canonical_nan, 0).into();
    }
    if v.is_infinite() {
        return (if v > 0.0 { "\"inf\"" } else { "\"-inf\"" }).into();
    }
    // `v` is exact in f64, and a decimal this short that rounds to it in
    // f64 (ryu's shortest) is equal to it: f64 steps are far finer.
    let exact = ryu::Buffer::new().format(v).to_owned();
    if significant_digits(&exact) <= max_digits(precision) {
        return exact.into();
    }
    shortest(v, round_trips).into()
}

/// The significant digits a type with `precision`-bit significands needs
/// to tell all its values apart: ceil(1 + precision * log10(2)).
pub(super) fn max_digits(precision: u32) -> usize {
    // log10(2) < 0.30103: with integers, 1 + floor(p * 30103 / 100000) + 1
    // is the ceiling (p * log10(2) is never a whole number for p >= 1).
    2 + (precision as usize * 30103) / 100_000
}

/// Significant digits of a decimal as ryu writes it (`-6.5504e4`, `448.0`).
pub(super) fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1)
}

pub(super) fn nan_text(bits: u64, canonical: u64, hex_digits: usize) -> String {
    if bits == canonical {
        "\"NaN\"".to_owned()
    } else {
        format!("\"NaN:0x{bits:0hex_digits$x}\"")
    }
}

pub(super) fn push_f32(out: &mut Vec<u8>, x: f32) {
    if x.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else if x.is_nan() {
        out.extend_from_slice(nan_text(x.to_bits().into(), 0x7fc0_0000, 8).as_bytes());
    } else {
        out.extend_from_slice(if x > 0.0 { b"\"inf\"" } else { b"\"-inf\"" });
    }
}

pub(super) fn push_f64(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else if x.is_nan() {
        out.extend_from_slice(nan_text(x.to_bits(), 0x7ff8_0000_0000_0000, 16).as_bytes());
    } else {
        out.extend_from_slice(if x > 0.0 { b"\"inf\"" } else { b"\"-inf\"" });
    }
}

/// Reads element `i` of a packed sub-byte tensor (LSB-first bit stream).
pub(crate) fn packed_get(data: &[u8], bits: usize, i: usize) -> u32 {
    let start = i * bits;
    let byte = start / 8;
    let word = u32::from(data[byte]) | data.get(byte + 1).map_or(0, |&b| u32::from(b) << 8);
    (word >> (start % 8)) & ((1 << bits) - 1)
}

/// Packs codes of `bits` bits each into an LSB-first bit stream.
pub(crate) fn pack(codes: &[u8], bits: usize) -> Vec<u8> {
    let mut out = vec![0u8; (codes.len() * bits).div_ceil(8)];
    for (i, &c) in codes.iter().enumerate() {
        let start = i * bits;
        let v = u32::from(c) << (start % 8);
        out[start / 8] |= v as u8;
        if v > 0xff {
            out[start / 8 + 1] |= (v >> 8) as u8;
        }
    }
    out
}

/// Appends the JSON text of `count` elements starting at element `first`
/// of `data` (a whole tensor's bytes), each followed by a comma except the
/// last element of the tensor. `Err` names the element and the problem.
pub(crate) fn write_elements(
    out: &mut Vec<u8>,
    dtype: Dtype,
    data: &[u8],
    first: usize,
    count: usize,
    total: usize,
) -> Result<(), String> {
    let mut itoa = itoa::Buffer::new();
    for i in first..first + count {
        match dtype {
            Dtype::BOOL => match data[i] {
                0 => out.extend_from_slice(b"false"),
                1 => out.extend_from_slice(b"true"),
                b => {
                    return Err(format!(
                        "BOOL element {i} is the byte {b}; only 0 and 1 are booleans"
                    ));
                }
            },
            Dtype::U8 => out.extend_from_slice(itoa.format(data[i]).as_bytes()),
            Dtype::I8 => out.extend_from_slice(itoa.format(data[i] as i8).as_bytes()),
            Dtype::U16 => {
                out.extend_from_slice(itoa.format(u16::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::I16 => {
                out.extend_from_slice(itoa.format(i16::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::U32 => {
                out.extend_from_slice(itoa.format(u32::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::I32 => {
                out.extend_from_slice(itoa.format(i32::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::U64 => {
                out.extend_from_slice(itoa.format(u64::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::I64 => {
                out.extend_from_slice(itoa.format(i64::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::F32 => push_f32(out, f32::from_le_bytes(le(data, i))),
            Dtype::F64 => push_f64(out, f64::from_le_bytes(le(data, i))),
            Dtype::C64 => {
                out.push(b'[');
                push_f32(out, f32::from_le_bytes(le(data, 2 * i)));
                out.push(b',');
                push_f32(out, f32::from_le_bytes(le(data, 2 * i + 1)));
                out.push(b']');
            }
            Dtype::F16 | Dtype::BF16 => {
                let code = u16::from_le_bytes(le(data, i));
                out.extend_from_slice(table(dtype)[usize::from(code)].as_bytes());
            }
            Dtype::F4 | Dtype::F6_E2M3 | Dtype::F6_E3M2 => {
                let code = packed_get(data, dtype.bits(), i);
                out.extend_from_slice(table(dtype)[code as usize].as_bytes());
            }
            Dtype::F8_E5M2
            | Dtype::F8_E4M3
            | Dtype::F8_E8M0
            | Dtype::F8_E4M3FNUZ
            | Dtype::F8_E5M2FNUZ => {
                out.extend_from_slice(table(dtype)[usize::from(data[i])].as_bytes());
            }
        }
        if i + 1 < total {
            out.push(b',');
        }
    }
    Ok(())
}

pub(super) fn le<const N: usize>(data: &[u8], i: usize) -> [u8; N] {
    data[i * N..(i + 1) * N]
        .try_into()
        .expect("slice of N bytes")
}
