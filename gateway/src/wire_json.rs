//! Prints proto3 JSON straight from a message's wire bytes, walking the descriptor as it reads.
//!
//! Every response the gateway answers with is printed, so this is the hot half of the JSON
//! mapping: decoding into a `DynamicMessage` first builds a map of boxed values per message and
//! an owned string per string field only to print them once. The output is the canonical form
//! of [`crate::json::print_message`] (field number order, fields without presence printed with
//! their defaults, 64-bit integers as strings, enums by name, bytes as base64, non-finite floats
//! as strings).
//!
//! It covers scalars, enums, nested and repeated messages, maps, oneofs, Timestamp, Duration,
//! the wrappers and Empty itself; `Any`, `Struct`, `Value`, `ListValue` and `FieldMask` values
//! are handed to the general printer one value at a time. Any wire that is not the plain case (a
//! singular message sent in pieces to merge, two members of one oneof, a repeated map key, a
//! group, an extension, bytes that do not decode, a value out of its JSON range) gives
//! [`Unsupported`], and the caller takes the general path for the whole message,
//! which merges, or reports the error, as the protobuf rules say.

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

/// This message (or its wire) needs the general path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

type Out<T = ()> = Result<T, Unsupported>;

/// Messages nest at most this deep here (the general path has its own limit).
const MAX_DEPTH: usize = 64;

/// Prints the message `wire` of type `desc`, or only its field `json_field` (a
/// `response_body`), as JSON.
pub fn print(desc: &MessageDescriptor, wire: &[u8], json_field: Option<&str>) -> Out<Vec<u8>> {
    let mut out = Vec::with_capacity(wire.len() * 2 + 16);
    match json_field {
        None => message(desc, wire, &mut out, 0)?,
        Some(name) => {
            let field = desc.get_field_by_json_name(name).ok_or(Unsupported)?;
            let fields = scan(desc, wire)?;
            field_value(&field, numbered(&fields, field.number()), &mut out, 0)?;
        }
    }
    Ok(out)
}

/// One field as it came on the wire.
#[derive(Debug, Clone, Copy)]
struct Occurrence<'a> {
    number: u32,
    value: Wire<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
}

/// The fields of one message, in field number order (stable: repeated values keep their order).
fn scan<'a>(desc: &MessageDescriptor, mut wire: &'a [u8]) -> Out<Vec<Occurrence<'a>>> {
    let mut fields = Vec::new();
    let mut sorted = true;
    while !wire.is_empty() {
        let key = varint(&mut wire)?;
        let number = u32::try_from(key >> 3).map_err(|_| Unsupported)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut wire)?),
            1 => Wire::Fixed64(u64::from_le_bytes(take(&mut wire, 8)?.try_into().map_err(|_| Unsupported)?)),
            2 => {
                let len = usize::try_from(varint(&mut wire)?).map_err(|_| Unsupported)?;
                Wire::Len(take(&mut wire, len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(take(&mut wire, 4)?.try_into().map_err(|_| Unsupported)?)),
            _ => return Err(Unsupported),
        };
        if number == 0 {
            return Err(Unsupported);
        }
        if desc.get_field(number).is_none() {
            if desc.extension_ranges().any(|r| r.contains(&number)) {
                // An extension: the general path knows the pool's extensions.
                return Err(Unsupported);
            }
            // Unknown fields are not printed.
            continue;
        }
        sorted &= fields.last().is_none_or(|last: &Occurrence| last.number <= number);
        fields.push(Occurrence { number, value });
    }
    if !sorted {
        fields.sort_by_key(|f| f.number);
    }
    Ok(fields)
}

/// The occurrences of field `number` among `fields` (sorted by number).
fn numbered<'s, 'a>(fields: &'s [Occurrence<'a>], number: u32) -> &'s [Occurrence<'a>] {
    let start = fields.partition_point(|f| f.number < number);
    let end = start + fields[start..].partition_point(|f| f.number == number);
    &fields[start..end]
}

fn varint(wire: &mut &[u8]) -> Out<u64> {
    let mut value = 0u64;
    for (i, &byte) in wire.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *wire = &wire[i + 1..];
            return Ok(value);
        }
    }
    Err(Unsupported)
}

fn take<'a>(wire: &mut &'a [u8], n: usize) -> Out<&'a [u8]> {
    if wire.len() < n {
        return Err(Unsupported);
    }
    let (head, rest) = wire.split_at(n);
    *wire = rest;
    Ok(head)
}

/// Prints one message as a JSON object.
fn message(desc: &MessageDescriptor, wire: &[u8], out: &mut Vec<u8>, depth: usize) -> Out {
    if depth > MAX_DEPTH {
        return Err(Unsupported);
    }
    if let Some(wkt) = well_known(desc, wire, out) {
        return wkt;
    }
    let fields = scan(desc, wire)?;
    // At most one member of each oneof may be set.
    let mut oneofs_seen: Vec<u32> = Vec::new();
    out.push(b'{');
    let mut first = true;
    let mut rest = &fields[..];
    for field in desc.fields() {
        let number = field.number();
        let skip = rest.iter().take_while(|f| f.number < number).count();
        rest = &rest[skip..];
        let n = rest.iter().take_while(|f| f.number == number).count();
        let (mine, after) = rest.split_at(n);
        rest = after;
        if mine.is_empty() && field.supports_presence() {
            continue;
        }
        if !mine.is_empty()
            && let Some(oneof) = field.containing_oneof()
        {
            let first_field = oneof.fields().next().map_or(0, |f| f.number());
            if oneofs_seen.contains(&first_field) {
                return Err(Unsupported);
            }
            oneofs_seen.push(first_field);
        }
        if !first {
            out.push(b',');
        }
        first = false;
        key(field.json_name(), out);
        field_value(&field, mine, out, depth)?;
    }
    out.push(b'}');
    Ok(())
}

fn key(name: &str, out: &mut Vec<u8>) {
    string(name, out);
    out.push(b':');
}

fn string(s: &str, out: &mut Vec<u8>) {
    // JSON escapes only quotes, backslashes and control characters (serde_json leaves the rest,
    // non-ASCII included, as it is): any other string is printed as it is. Folded rather than
    // short-circuited, so the check runs over whole words.
    let plain = !s.bytes().fold(false, |escape, b| escape | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec");
    }
}

/// Prints a field's value from its occurrences: a list, a map, or the last one (the default
/// when there is none).
fn field_value(field: &FieldDescriptor, occurrences: &[Occurrence<'_>], out: &mut Vec<u8>, depth: usize) -> Out {
    let kind = field.kind();
    if field.is_map() {
        let entry = kind.as_message().ok_or(Unsupported)?;
        return map(entry, occurrences, out, depth);
    }
    if field.is_list() {
        out.push(b'[');
        let mut first = true;
        for o in occurrences {
            match (o.value, packable(&kind)) {
                (Wire::Len(mut packed), true) => {
                    while !packed.is_empty() {
                        let item = match packed_width(&kind) {
                            0 => Wire::Varint(varint(&mut packed)?),
                            4 => Wire::Fixed32(u32::from_le_bytes(
                                take(&mut packed, 4)?.try_into().map_err(|_| Unsupported)?,
                            )),
                            _ => Wire::Fixed64(u64::from_le_bytes(
                                take(&mut packed, 8)?.try_into().map_err(|_| Unsupported)?,
                            )),
                        };
                        comma(&mut first, out);
                        value(&kind, item, out, depth)?;
                    }
                }
                (item, _) => {
                    comma(&mut first, out);
                    value(&kind, item, out, depth)?;
                }
            }
        }
        out.push(b']');
        return Ok(());
    }
    let mut last = None;
    for o in occurrences {
        if last.is_some() && matches!(kind, Kind::Message(_)) {
            // A message sent in pieces is merged; the general path does that.
            return Err(Unsupported);
        }
        last = Some(o.value);
    }
    match last {
        Some(v) => value(&kind, v, out, depth),
        None => default(&kind, out, depth),
    }
}

fn comma(first: &mut bool, out: &mut Vec<u8>) {
    if !*first {
        out.push(b',');
    }
    *first = false;
}

/// Scalar kinds that can come packed, and their width on the wire (0 for varints).
fn packable(kind: &Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

fn packed_width(kind: &Kind) -> usize {
    match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => 8,
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => 4,
        _ => 0,
    }
}

/// Prints a map field's entries; a key given twice (last one wins) goes to the general path.
fn map(entry: &MessageDescriptor, occurrences: &[Occurrence<'_>], out: &mut Vec<u8>, depth: usize) -> Out {
    let key_field = entry.map_entry_key_field();
    let value_field = entry.map_entry_value_field();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    out.push(b'{');
    let mut first = true;
    for o in occurrences {
        let Wire::Len(bytes) = o.value else { return Err(Unsupported) };
        let fields = scan(entry, bytes)?;
        let of = |number: u32| numbered(&fields, number);
        let mut k = Vec::new();
        // Map keys are JSON strings whatever their type.
        match key_field.kind() {
            Kind::String => field_value(&key_field, of(1), &mut k, depth)?,
            kind => {
                let mut text = Vec::new();
                field_value(&key_field, of(1), &mut text, depth)?;
                if matches!(kind, Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64) {
                    k = text;
                } else {
                    k.push(b'"');
                    k.extend_from_slice(&text);
                    k.push(b'"');
                }
            }
        }
        if keys.contains(&k) {
            return Err(Unsupported);
        }
        comma(&mut first, out);
        out.extend_from_slice(&k);
        out.push(b':');
        keys.push(k);
        field_value(&value_field, of(2), out, depth)?;
    }
    out.push(b'}');
    Ok(())
}

/// Prints one value of `kind` from the wire.
fn value(kind: &Kind, wire: Wire<'_>, out: &mut Vec<u8>, depth: usize) -> Out {
    match (kind, wire) {
        (Kind::Double, Wire::Fixed64(bits)) => float(f64::from_bits(bits), out),
        (Kind::Float, Wire::Fixed32(bits)) => float32(f32::from_bits(bits), out),
        (Kind::Int32, Wire::Varint(v)) => number(v as i32, out),
        (Kind::Int64, Wire::Varint(v)) => quoted(v as i64, out),
        (Kind::Uint32, Wire::Varint(v)) => number(v as u32, out),
        (Kind::Uint64, Wire::Varint(v)) => quoted(v, out),
        (Kind::Sint32, Wire::Varint(v)) => number(((v as u32) >> 1) as i32 ^ -((v & 1) as i32), out),
        (Kind::Sint64, Wire::Varint(v)) => quoted((v >> 1) as i64 ^ -((v & 1) as i64), out),
        (Kind::Fixed32, Wire::Fixed32(v)) => number(v, out),
        (Kind::Fixed64, Wire::Fixed64(v)) => quoted(v, out),
        (Kind::Sfixed32, Wire::Fixed32(v)) => number(v as i32, out),
        (Kind::Sfixed64, Wire::Fixed64(v)) => quoted(v as i64, out),
        (Kind::Bool, Wire::Varint(v)) => out.extend_from_slice(if v != 0 { b"true" } else { b"false" }),
        (Kind::String, Wire::Len(bytes)) => string(std::str::from_utf8(bytes).map_err(|_| Unsupported)?, out),
        (Kind::Bytes, Wire::Len(bytes)) => base64(bytes, out),
        (Kind::Enum(e), Wire::Varint(v)) => {
            let n = v as i32;
            if e.full_name() == "google.protobuf.NullValue" {
                out.extend_from_slice(b"null");
            } else {
                match e.get_value(n) {
                    Some(named) => string(named.name(), out),
                    None => number(n, out),
                }
            }
        }
        (Kind::Message(m), Wire::Len(bytes)) => message(m, bytes, out, depth + 1)?,
        _ => return Err(Unsupported),
    }
    Ok(())
}

/// Prints the default of `kind`, for a field without presence that is not on the wire.
fn default(kind: &Kind, out: &mut Vec<u8>, depth: usize) -> Out {
    match kind {
        Kind::Double | Kind::Float => out.extend_from_slice(b"0.0"),
        Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64 => out.extend_from_slice(b"\"0\""),
        Kind::Int32 | Kind::Uint32 | Kind::Sint32 | Kind::Fixed32 | Kind::Sfixed32 => out.push(b'0'),
        Kind::Bool => out.extend_from_slice(b"false"),
        Kind::String | Kind::Bytes => out.extend_from_slice(b"\"\""),
        Kind::Enum(e) => {
            let d = e.default_value();
            value(kind, Wire::Varint(d.number() as i64 as u64), out, depth)?;
        }
        Kind::Message(m) => message(m, &[], out, depth + 1)?,
    }
    Ok(())
}

fn number(n: impl serde::Serialize, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, &n).expect("writing to a Vec");
}

fn quoted(n: impl serde::Serialize, out: &mut Vec<u8>) {
    out.push(b'"');
    number(n, out);
    out.push(b'"');
}

fn float(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() { number(f, out) } else { non_finite(f.is_nan(), f > 0.0, out) }
}

fn float32(f: f32, out: &mut Vec<u8>) {
    if f.is_finite() { number(f, out) } else { non_finite(f.is_nan(), f > 0.0, out) }
}

fn non_finite(nan: bool, positive: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(match (nan, positive) {
        (true, _) => b"\"NaN\"",
        (false, true) => b"\"Infinity\"",
        (false, false) => b"\"-Infinity\"",
    });
}

fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    // Encoded in place, after the opening quote: no string of its own per bytes value.
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("sized for padded base64");
    out.truncate(start + written);
    out.push(b'"');
}

/// The well-known types printed in their own JSON form; `None` for other messages.
fn well_known(desc: &MessageDescriptor, wire: &[u8], out: &mut Vec<u8>) -> Option<Out> {
    use std::io::Write as _;
    if crate::descriptor::is_scalar_wrapper(desc) {
        // A wrapper prints as its one field's value.
        let field = desc.get_field(1)?;
        return Some(scan(desc, wire).and_then(|fields| field_value(&field, numbered(&fields, 1), out, 0)));
    }
    let printed = match desc.full_name() {
        "google.protobuf.Timestamp" => prost_types::Timestamp::decode(wire).ok().filter(timestamp_in_range).map(|t| {
            let _ = write!(out, "\"{t}\"");
        }),
        "google.protobuf.Duration" => prost_types::Duration::decode(wire).ok().filter(duration_in_range).map(|d| {
            let _ = write!(out, "\"{d}\"");
        }),
        "google.protobuf.Empty" => {
            out.extend_from_slice(b"{}");
            Some(())
        }
        // Rare in responses, and each with a JSON form of its own: printed by the general path,
        // one value at a time.
        "google.protobuf.Any"
        | "google.protobuf.Struct"
        | "google.protobuf.Value"
        | "google.protobuf.ListValue"
        | "google.protobuf.FieldMask" => prost_reflect::DynamicMessage::decode(desc.clone(), wire).ok().and_then(|m| {
            m.serialize_with_options(&mut serde_json::Serializer::new(&mut *out), &crate::json::PRINT).ok()
        }),
        _ => return None,
    };
    // Out of range for its JSON form: the general path says why.
    Some(printed.ok_or(Unsupported))
}

/// 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, as the JSON mapping allows.
fn timestamp_in_range(t: &prost_types::Timestamp) -> bool {
    (-62_135_596_800..=253_402_300_799).contains(&t.seconds) && (0..1_000_000_000).contains(&t.nanos)
}

/// ±10,000 years, with seconds and nanos of one sign.
fn duration_in_range(d: &prost_types::Duration) -> bool {
    d.seconds.abs() <= 315_576_000_000
        && d.nanos.abs() < 1_000_000_000
        && !(d.seconds > 0 && d.nanos < 0)
        && !(d.seconds < 0 && d.nanos > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;
    use serde_json::{Value, json};

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    /// Prints `json` (a message of `name`) both ways and checks they agree.
    fn same(name: &str, json: Value) -> Value {
        let desc = pool().get_message_by_name(name).unwrap();
        let msg = crate::json::from_value(&desc, json).unwrap();
        let wire = prost::Message::encode_to_vec(&msg);
        let general: Value = serde_json::from_slice(&crate::json::print_message(&msg).unwrap()).unwrap();
        let direct: Value = serde_json::from_slice(&print(&desc, &wire, None).unwrap()).unwrap();
        assert_eq!(direct, general, "{name}");
        direct
    }

    #[test]
    fn strings_are_written_byte_for_byte_as_serde_json_writes_them() {
        for s in
            ["", "ada@example.com", "a/b.c", "✓ naïve", "del\u{7f}", "q\"", "back\\", "nl\n", "c\u{1f}", "x\u{2028}"]
        {
            let mut ours = Vec::new();
            string(s, &mut ours);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn scalars_print_as_the_general_path_does() {
        same("types.v1.ScalarTypes", json!({}));
        let v = same(
            "types.v1.ScalarTypes",
            json!({
                "doubleField": 1.5e300, "floatField": -0.25, "int32Field": -7, "int64Field": "-9007199254740993",
                "uint32Field": 4294967295u32, "uint64Field": "18446744073709551615", "sint32Field": -2147483648i64,
                "sint64Field": "-9223372036854775808", "fixed32Field": 7, "fixed64Field": "8", "boolField": true,
                "stringField": "tab\t \"quote\" ✓ \u{1}", "bytesField": "AAECAwQ="
            }),
        );
        assert_eq!(v["int64Field"], json!("-9007199254740993"));
        for f in ["NaN", "Infinity", "-Infinity"] {
            let v = same("types.v1.ScalarTypes", json!({"doubleField": f, "floatField": f}));
            assert_eq!(v["doubleField"], json!(f));
        }
    }

    #[test]
    fn messages_lists_maps_enums_and_oneofs_print_as_the_general_path_does() {
        same(
            "user.v1.User",
            json!({"id": "u1", "name": "Ada", "roles": ["a", "b"], "metadata": {"k": "v", "x": ""},
                   "status": "USER_STATUS_ACTIVE", "age": 36}),
        );
        same("types.v1.Response", json!({"error": {"code": 5, "message": "gone"}}));
        same("types.v1.Response", json!({"user": {}}));
        same("types.v1.Response", json!({}));
    }

    #[test]
    fn well_known_types_print_as_the_general_path_does() {
        same(
            "types.v1.Event",
            json!({"createdAt": "2024-02-29T12:00:00.120Z", "duration": "-1.000000500s", "name": "",
                   "count": 0, "status": {}}),
        );
        same("types.v1.Event", json!({"createdAt": "0001-01-01T00:00:00Z", "duration": "0s"}));
        same("types.v1.Event", json!({}));
    }

    #[test]
    fn response_body_prints_one_field_or_its_default() {
        let desc = pool().get_message_by_name("types.v1.Response").unwrap();
        let msg = crate::json::from_value(&desc, json!({"error": {"code": 3}})).unwrap();
        let wire = prost::Message::encode_to_vec(&msg);
        let out: Value = serde_json::from_slice(&print(&desc, &wire, Some("error")).unwrap()).unwrap();
        assert_eq!(out, json!({"code": 3, "message": "", "field": ""}));
        let out: Value = serde_json::from_slice(&print(&desc, &[], Some("error")).unwrap()).unwrap();
        assert_eq!(out, json!({"code": 0, "message": "", "field": ""}));
    }

    #[test]
    fn what_needs_merging_or_checking_goes_to_the_general_path() {
        let pool = pool();
        let response = pool.get_message_by_name("types.v1.Response").unwrap();
        // Two members of one oneof.
        let two = [0x0a, 0x00, 0x1a, 0x00];
        assert_eq!(print(&response, &two, None), Err(Unsupported));
        // One message field sent twice (to be merged).
        let twice = [0x1a, 0x02, 0x08, 0x01, 0x1a, 0x02, 0x08, 0x02];
        assert_eq!(print(&response, &twice, None), Err(Unsupported));
        // Truncated and invalid wire, bad UTF-8.
        let scalars = pool.get_message_by_name("types.v1.ScalarTypes").unwrap();
        assert_eq!(print(&scalars, &[0x62, 0x05, b'a'], None), Err(Unsupported));
        assert_eq!(print(&scalars, &[0x62, 0x01, 0xff], None), Err(Unsupported));
        assert_eq!(print(&scalars, &[0x18], None), Err(Unsupported));
        // A group (start and end markers) is left to the general path.
        assert_eq!(print(&scalars, &[0x0b, 0x0c], None), Err(Unsupported));
        // A timestamp out of the JSON range.
        let event = pool.get_message_by_name("types.v1.Event").unwrap();
        let far = prost::Message::encode_to_vec(&prost_types::Timestamp { seconds: i64::MAX, nanos: 0 });
        let mut wire = vec![0x12, far.len() as u8];
        wire.extend_from_slice(&far);
        assert_eq!(print(&event, &wire, None), Err(Unsupported));
        // Unknown fields are left out, as the general path does.
        let unknown: Value = serde_json::from_slice(&print(&scalars, &[0xf8, 0x3f, 0x01], None).unwrap()).unwrap();
        assert_eq!(unknown, same("types.v1.ScalarTypes", json!({})));
    }
}
