//! Prints proto3 JSON straight from a message's wire bytes, following a [`Plan`] worked out
//! from the descriptors once per route.
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
use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// This message (or its wire) needs the general path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

type Out<T = ()> = Result<T, Unsupported>;

/// Messages nest at most this deep here (the general path has its own limit).
const MAX_DEPTH: usize = 64;

/// Field numbers below this are found by indexing; larger ones (rare) by a binary search.
const DENSE: u32 = 256;

/// How to print one message type and every type it holds, worked out once from the descriptors
/// (with the route table): field numbers, JSON keys already quoted, kinds, enum names. Printing a
/// response then makes no descriptor lookups — they were most of its cost.
#[derive(Debug)]
pub struct Plan {
    /// The root is the first.
    messages: Vec<MessagePlan>,
    enums: Vec<EnumPlan>,
    /// The length of the last text printed: the next message of a stream is most often about
    /// as long, so its buffer is sized from this rather than grown (and copied) as it fills.
    last_len: AtomicUsize,
}

/// The largest buffer a print reserves from the last message's length alone.
const MAX_LEN_HINT: usize = 64 * 1024;

#[derive(Debug)]
struct MessagePlan {
    desc: MessageDescriptor,
    form: Form,
    /// In field number order (as `MessageDescriptor::fields` yields them), so a position in it
    /// orders fields as their numbers do.
    fields: Vec<FieldPlan>,
    /// Positions in `fields` by field number, below [`DENSE`] (`u16::MAX`: no such field).
    dense: Vec<u16>,
    /// The message declares extension ranges (an extension on the wire needs the general path).
    extendable: bool,
}

/// How a message prints: as an object of its fields, or in a well-known type's own form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Fields,
    /// A scalar wrapper: its one field's value.
    Wrapper,
    Timestamp,
    Duration,
    Empty,
    /// `Any`, `Struct`, `Value`, `ListValue`, `FieldMask`: rare in responses, each with a JSON
    /// form of its own; printed by the general path, one value at a time.
    General,
}

#[derive(Debug)]
struct FieldPlan {
    number: u32,
    /// `"jsonName":`
    key: Box<[u8]>,
    ty: Ty,
    shape: Shape,
    presence: bool,
    /// The first field number of its oneof, if it is in one: one member may be set at most.
    oneof: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single,
    List,
    /// A map field, printed from its entries (a message of `plan`'s fields 1 and 2).
    Map(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    /// An enum, by its position in [`Plan::enums`].
    Enum(usize),
    /// `google.protobuf.NullValue`: always `null`.
    Null,
    /// A message, by its position in [`Plan::messages`].
    Message(usize),
}

#[derive(Debug)]
struct EnumPlan {
    /// Each number's name as the JSON mapping prints it (quoted), by number.
    names: Vec<(i32, Box<[u8]>)>,
    default: i32,
}

impl Plan {
    /// The plan for messages of type `root`.
    pub fn new(root: &MessageDescriptor) -> Plan {
        let mut b = Builder::default();
        b.message(root);
        Plan { messages: b.messages, enums: b.enums, last_len: AtomicUsize::new(0) }
    }

    /// The message type this plan prints.
    pub fn descriptor(&self) -> &MessageDescriptor {
        &self.messages[0].desc
    }

    /// Prints the message `wire`, or only its field `json_field` (a `response_body`), as JSON.
    pub fn print(&self, wire: &[u8], json_field: Option<&str>) -> Out<Vec<u8>> {
        // A little over the last length, so a message slightly longer than the last one does
        // not grow the buffer either; a message far from it (the first, or another response
        // shape) grows it as before. Capped, so that one very large message does not make the
        // next (perhaps small) one reserve as much.
        let hint = self.last_len.load(Ordering::Relaxed).min(MAX_LEN_HINT);
        let mut out = Vec::with_capacity((wire.len() * 2 + 16).max(hint + hint / 8));
        let mut printer = Printer { plan: self, out: &mut out };
        match json_field {
            None => printer.message(0, wire, 0)?,
            Some(name) => {
                let root = &self.messages[0];
                let number = root.desc.get_field_by_json_name(name).ok_or(Unsupported)?.number();
                let at = root.position(number).ok_or(Unsupported)?;
                let fields = scan(root, wire)?;
                printer.field_value(&root.fields[at], occurrences_at(&fields, at), 0)?;
            }
        }
        self.last_len.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }
}

/// Builds a [`Plan`]: each message and enum type once (recursive types refer back by position).
#[derive(Default)]
struct Builder {
    messages: Vec<MessagePlan>,
    enums: Vec<EnumPlan>,
    /// By full name (one pool: names are unique).
    message_at: HashMap<String, usize>,
    enum_at: HashMap<String, usize>,
}

impl Builder {
    fn message(&mut self, desc: &MessageDescriptor) -> usize {
        if let Some(&at) = self.message_at.get(desc.full_name()) {
            return at;
        }
        let at = self.messages.len();
        self.message_at.insert(desc.full_name().to_owned(), at);
        let form = form(desc);
        self.messages.push(MessagePlan {
            desc: desc.clone(),
            form,
            fields: Vec::new(),
            dense: Vec::new(),
            extendable: desc.extension_ranges().next().is_some(),
        });
        if !matches!(form, Form::Fields | Form::Wrapper) {
            return at;
        }
        let fields: Vec<FieldPlan> = desc.fields().map(|f| self.field(&f)).collect();
        let top = fields.iter().map(|f| f.number + 1).filter(|&n| n <= DENSE).max().unwrap_or(0);
        let mut dense = vec![u16::MAX; top as usize];
        for (i, f) in fields.iter().enumerate() {
            if let Some(slot) = dense.get_mut(f.number as usize) {
                *slot = u16::try_from(i).unwrap_or(u16::MAX);
            }
        }
        let plan = &mut self.messages[at];
        plan.fields = fields;
        plan.dense = dense;
        at
    }

    fn field(&mut self, field: &FieldDescriptor) -> FieldPlan {
        let mut key = Vec::new();
        string(field.json_name(), &mut key);
        key.push(b':');
        let kind = field.kind();
        let shape = match &kind {
            Kind::Message(entry) if field.is_map() => Shape::Map(self.message(entry)),
            _ if field.is_list() => Shape::List,
            _ => Shape::Single,
        };
        FieldPlan {
            number: field.number(),
            key: key.into(),
            ty: self.ty(&kind),
            shape,
            presence: field.supports_presence(),
            oneof: field.containing_oneof().map(|o| o.fields().next().map_or(0, |f| f.number())),
        }
    }

    fn ty(&mut self, kind: &Kind) -> Ty {
        match kind {
            Kind::Double => Ty::Double,
            Kind::Float => Ty::Float,
            Kind::Int32 => Ty::Int32,
            Kind::Int64 => Ty::Int64,
            Kind::Uint32 => Ty::Uint32,
            Kind::Uint64 => Ty::Uint64,
            Kind::Sint32 => Ty::Sint32,
            Kind::Sint64 => Ty::Sint64,
            Kind::Fixed32 => Ty::Fixed32,
            Kind::Fixed64 => Ty::Fixed64,
            Kind::Sfixed32 => Ty::Sfixed32,
            Kind::Sfixed64 => Ty::Sfixed64,
            Kind::Bool => Ty::Bool,
            Kind::String => Ty::String,
            Kind::Bytes => Ty::Bytes,
            Kind::Enum(e) if e.full_name() == "google.protobuf.NullValue" => Ty::Null,
            Kind::Enum(e) => Ty::Enum(self.enumeration(e)),
            Kind::Message(m) => Ty::Message(self.message(m)),
        }
    }

    fn enumeration(&mut self, e: &EnumDescriptor) -> usize {
        if let Some(&at) = self.enum_at.get(e.full_name()) {
            return at;
        }
        let mut names: Vec<(i32, Box<[u8]>)> = Vec::new();
        for v in e.values() {
            let n = v.number();
            if names.iter().all(|(m, _)| *m != n)
                && let Some(named) = e.get_value(n)
            {
                let mut quoted = Vec::new();
                string(named.name(), &mut quoted);
                names.push((n, quoted.into()));
            }
        }
        names.sort_by_key(|(n, _)| *n);
        let at = self.enums.len();
        self.enums.push(EnumPlan { names, default: e.default_value().number() });
        self.enum_at.insert(e.full_name().to_owned(), at);
        at
    }
}

fn form(desc: &MessageDescriptor) -> Form {
    if crate::descriptor::is_scalar_wrapper(desc) {
        return Form::Wrapper;
    }
    match desc.full_name() {
        "google.protobuf.Timestamp" => Form::Timestamp,
        "google.protobuf.Duration" => Form::Duration,
        "google.protobuf.Empty" => Form::Empty,
        "google.protobuf.Any"
        | "google.protobuf.Struct"
        | "google.protobuf.Value"
        | "google.protobuf.ListValue"
        | "google.protobuf.FieldMask" => Form::General,
        _ => Form::Fields,
    }
}

impl MessagePlan {
    fn position(&self, number: u32) -> Option<usize> {
        match self.dense.get(number as usize) {
            Some(&i) if i != u16::MAX => Some(usize::from(i)),
            Some(_) => None,
            None if number < DENSE => None,
            None => self.fields.binary_search_by_key(&number, |f| f.number).ok(),
        }
    }
}

/// One field as it came on the wire.
#[derive(Debug, Clone, Copy)]
struct Occurrence<'a> {
    /// The field's position in the message plan's `fields`.
    at: usize,
    value: Wire<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
}

/// The next field on the wire that `plan` knows (unknown fields are not printed); `None` at
/// the end.
#[inline(always)]
fn next_known<'a>(plan: &MessagePlan, wire: &mut &'a [u8]) -> Out<Option<Occurrence<'a>>> {
    while !wire.is_empty() {
        let key = varint(wire)?;
        let number = u32::try_from(key >> 3).map_err(|_| Unsupported)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(wire)?),
            1 => Wire::Fixed64(u64::from_le_bytes(take(wire, 8)?.try_into().map_err(|_| Unsupported)?)),
            2 => {
                let len = usize::try_from(varint(wire)?).map_err(|_| Unsupported)?;
                Wire::Len(take(wire, len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(take(wire, 4)?.try_into().map_err(|_| Unsupported)?)),
            _ => return Err(Unsupported),
        };
        if number == 0 {
            return Err(Unsupported);
        }
        if let Some(at) = plan.position(number) {
            return Ok(Some(Occurrence { at, value }));
        }
        if plan.extendable && plan.desc.extension_ranges().any(|r| r.contains(&number)) {
            // An extension: the general path knows the pool's extensions.
            return Err(Unsupported);
        }
    }
    Ok(None)
}

/// The fields of one message, in field number order (stable: repeated values keep their order).
fn scan<'a>(plan: &MessagePlan, mut wire: &'a [u8]) -> Out<Vec<Occurrence<'a>>> {
    // Room for one occurrence of each field, so a message without repeated fields is scanned
    // into one allocation (grown from empty, it took four reallocations for an order).
    let mut fields = Vec::with_capacity(plan.fields.len());
    let mut sorted = true;
    while let Some(o) = next_known(plan, &mut wire)? {
        sorted &= fields.last().is_none_or(|last: &Occurrence| last.at <= o.at);
        fields.push(o);
    }
    if !sorted {
        fields.sort_by_key(|f| f.at);
    }
    Ok(fields)
}

/// The occurrences of the field at position `at` among `fields` (sorted).
fn occurrences_at<'s, 'a>(fields: &'s [Occurrence<'a>], at: usize) -> &'s [Occurrence<'a>] {
    let start = fields.partition_point(|f| f.at < at);
    let end = start + fields[start..].partition_point(|f| f.at == at);
    &fields[start..end]
}

/// Most keys and small values take one byte: read here, without prost's `Buf` calls, which
/// decode the longer ones. Always inlined: the compiler once chose not to, and the call per
/// key and value cost ~8% of a streamed order's printing.
#[inline(always)]
fn varint(wire: &mut &[u8]) -> Out<u64> {
    match wire.split_first() {
        Some((&byte, rest)) if byte < 0x80 => {
            *wire = rest;
            Ok(u64::from(byte))
        }
        _ => long_varint(wire),
    }
}

fn long_varint(wire: &mut &[u8]) -> Out<u64> {
    prost::encoding::decode_varint(wire).map_err(|_| Unsupported)
}

fn take<'a>(wire: &mut &'a [u8], n: usize) -> Out<&'a [u8]> {
    if wire.len() < n {
        return Err(Unsupported);
    }
    let (head, rest) = wire.split_at(n);
    *wire = rest;
    Ok(head)
}

/// A string field's value from the wire, which must be UTF-8 (else the general path reports it).
fn string_field(bytes: &[u8], out: &mut Vec<u8>) -> Out {
    // One pass settles the usual case: printable ASCII without quotes or backslashes is valid
    // UTF-8 and printed as it is, with no separate UTF-8 check (which cost as much as the
    // printing for ids and names).
    let plain_ascii =
        !bytes.iter().fold(false, |odd, &b| odd | !(0x20..0x80).contains(&b) | (b == b'"') | (b == b'\\'));
    if plain_ascii {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    } else {
        string(std::str::from_utf8(bytes).map_err(|_| Unsupported)?, out);
    }
    Ok(())
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

/// Prints into `out` following `plan`.
struct Printer<'p, 'o> {
    plan: &'p Plan,
    out: &'o mut Vec<u8>,
}

impl Printer<'_, '_> {
    /// Prints one message (`plan.messages[at]`) as a JSON object, or in its well-known form.
    fn message(&mut self, at: usize, wire: &[u8], depth: usize) -> Out {
        if depth > MAX_DEPTH {
            return Err(Unsupported);
        }
        let plan = &self.plan.messages[at];
        match plan.form {
            Form::Fields => {}
            Form::Wrapper => {
                let field = plan.fields.first().ok_or(Unsupported)?;
                let fields = scan(plan, wire)?;
                return self.field_value(field, occurrences_at(&fields, 0), depth);
            }
            form => return self.well_known(form, &plan.desc, wire),
        }
        let start = self.out.len();
        if self.fields_in_order(plan, wire, depth)? {
            return Ok(());
        }
        self.out.truncate(start);
        self.fields_scanned(plan, wire, depth)
    }

    /// Prints a message's fields in one pass over the wire, as they come, when they come in
    /// field number order with a repeated field's values together (as every protobuf library
    /// writes them); `false` (with part of the object printed) when they do not, and the
    /// caller sorts them first. No list of the fields is built: building and walking it were
    /// a fifth of the printing of a streamed order.
    fn fields_in_order(&mut self, plan: &MessagePlan, mut wire: &[u8], depth: usize) -> Out<bool> {
        let mut oneofs = Oneofs::default();
        // The fields before this one in `plan.fields` are printed, or absent.
        let mut next = 0;
        let mut first = true;
        self.out.push(b'{');
        let mut pending = next_known(plan, &mut wire)?;
        while let Some(o) = pending {
            if o.at < next {
                return Ok(false);
            }
            for absent in &plan.fields[next..o.at] {
                self.absent(absent, &mut first, depth)?;
            }
            next = o.at + 1;
            let field = &plan.fields[o.at];
            oneofs.set(field)?;
            comma(&mut first, self.out);
            self.out.extend_from_slice(&field.key);
            pending = next_known(plan, &mut wire)?;
            match field.shape {
                Shape::Map(entry) => {
                    let mut entries = vec![o];
                    while let Some(p) = pending.filter(|p| p.at == o.at) {
                        entries.push(p);
                        pending = next_known(plan, &mut wire)?;
                    }
                    self.map(entry, &entries, depth)?;
                }
                // Given more than once: the last wins, or a message merges.
                Shape::Single if pending.is_some_and(|p| p.at == o.at) => return Ok(false),
                Shape::Single => self.value(field.ty, o.value, depth)?,
                Shape::List => {
                    self.out.push(b'[');
                    let mut first_item = true;
                    self.list_item(field.ty, o.value, &mut first_item, depth)?;
                    while let Some(p) = pending.filter(|p| p.at == o.at) {
                        self.list_item(field.ty, p.value, &mut first_item, depth)?;
                        pending = next_known(plan, &mut wire)?;
                    }
                    self.out.push(b']');
                }
            }
        }
        for absent in &plan.fields[next..] {
            self.absent(absent, &mut first, depth)?;
        }
        self.out.push(b'}');
        Ok(true)
    }

    /// Prints a message's fields from the list of them sorted by number: any order on the wire.
    fn fields_scanned(&mut self, plan: &MessagePlan, wire: &[u8], depth: usize) -> Out {
        let fields = scan(plan, wire)?;
        let mut oneofs = Oneofs::default();
        self.out.push(b'{');
        let mut first = true;
        let mut rest = &fields[..];
        for (at, field) in plan.fields.iter().enumerate() {
            let n = rest.iter().take_while(|f| f.at == at).count();
            let (mine, after) = rest.split_at(n);
            rest = after;
            if mine.is_empty() {
                self.absent(field, &mut first, depth)?;
                continue;
            }
            oneofs.set(field)?;
            comma(&mut first, self.out);
            self.out.extend_from_slice(&field.key);
            self.field_value(field, mine, depth)?;
        }
        self.out.push(b'}');
        Ok(())
    }

    /// A field not on the wire: printed with its default unless it has presence.
    fn absent(&mut self, field: &FieldPlan, first: &mut bool, depth: usize) -> Out {
        if field.presence {
            return Ok(());
        }
        comma(first, self.out);
        self.out.extend_from_slice(&field.key);
        self.field_value(field, &[], depth)
    }

    /// Prints one value of a list from one occurrence, which holds several when packed.
    fn list_item(&mut self, ty: Ty, item: Wire<'_>, first: &mut bool, depth: usize) -> Out {
        match (item, packed_width(ty)) {
            (Wire::Len(mut packed), Some(width)) => {
                while !packed.is_empty() {
                    let item = match width {
                        0 => Wire::Varint(varint(&mut packed)?),
                        4 => Wire::Fixed32(u32::from_le_bytes(
                            take(&mut packed, 4)?.try_into().map_err(|_| Unsupported)?,
                        )),
                        _ => Wire::Fixed64(u64::from_le_bytes(
                            take(&mut packed, 8)?.try_into().map_err(|_| Unsupported)?,
                        )),
                    };
                    comma(first, self.out);
                    self.value(ty, item, depth)?;
                }
                Ok(())
            }
            (item, _) => {
                comma(first, self.out);
                self.value(ty, item, depth)
            }
        }
    }

    /// Prints a field's value from its occurrences: a list, a map, or the last one (the
    /// default when there is none).
    fn field_value(&mut self, field: &FieldPlan, occurrences: &[Occurrence<'_>], depth: usize) -> Out {
        let ty = field.ty;
        match field.shape {
            Shape::Map(entry) => return self.map(entry, occurrences, depth),
            Shape::List => {
                self.out.push(b'[');
                let mut first = true;
                for o in occurrences {
                    self.list_item(ty, o.value, &mut first, depth)?;
                }
                self.out.push(b']');
                return Ok(());
            }
            Shape::Single => {}
        }
        let mut last = None;
        for o in occurrences {
            if last.is_some() && matches!(ty, Ty::Message(_)) {
                // A message sent in pieces is merged; the general path does that.
                return Err(Unsupported);
            }
            last = Some(o.value);
        }
        match last {
            Some(v) => self.value(ty, v, depth),
            None => self.default(ty, depth),
        }
    }

    /// Prints a map field's entries; a key given twice (last one wins) goes to the general path.
    fn map(&mut self, entry: usize, occurrences: &[Occurrence<'_>], depth: usize) -> Out {
        let plan = &self.plan.messages[entry];
        let (Some(key_at), Some(value_at)) = (plan.position(1), plan.position(2)) else {
            return Err(Unsupported);
        };
        let (key_field, value_field) = (&plan.fields[key_at], &plan.fields[value_at]);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        self.out.push(b'{');
        let mut first = true;
        for o in occurrences {
            let Wire::Len(bytes) = o.value else { return Err(Unsupported) };
            let fields = scan(plan, bytes)?;
            let mut text = Vec::new();
            Printer { plan: self.plan, out: &mut text }.field_value(
                key_field,
                occurrences_at(&fields, key_at),
                depth,
            )?;
            // Map keys are JSON strings whatever their type (64-bit integers already are).
            let k = match key_field.ty {
                Ty::String | Ty::Int64 | Ty::Uint64 | Ty::Sint64 | Ty::Fixed64 | Ty::Sfixed64 => text,
                _ => {
                    let mut k = Vec::with_capacity(text.len() + 2);
                    k.push(b'"');
                    k.extend_from_slice(&text);
                    k.push(b'"');
                    k
                }
            };
            if keys.contains(&k) {
                return Err(Unsupported);
            }
            comma(&mut first, self.out);
            self.out.extend_from_slice(&k);
            self.out.push(b':');
            keys.push(k);
            self.field_value(value_field, occurrences_at(&fields, value_at), depth)?;
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Prints one value of type `ty` from the wire.
    fn value(&mut self, ty: Ty, wire: Wire<'_>, depth: usize) -> Out {
        let out = &mut *self.out;
        match (ty, wire) {
            (Ty::Double, Wire::Fixed64(bits)) => float(f64::from_bits(bits), out),
            (Ty::Float, Wire::Fixed32(bits)) => float32(f32::from_bits(bits), out),
            (Ty::Int32, Wire::Varint(v)) => number(v as i32, out),
            (Ty::Int64, Wire::Varint(v)) => quoted(v as i64, out),
            (Ty::Uint32, Wire::Varint(v)) => number(v as u32, out),
            (Ty::Uint64, Wire::Varint(v)) => quoted(v, out),
            (Ty::Sint32, Wire::Varint(v)) => number(((v as u32) >> 1) as i32 ^ -((v & 1) as i32), out),
            (Ty::Sint64, Wire::Varint(v)) => quoted((v >> 1) as i64 ^ -((v & 1) as i64), out),
            (Ty::Fixed32, Wire::Fixed32(v)) => number(v, out),
            (Ty::Fixed64, Wire::Fixed64(v)) => quoted(v, out),
            (Ty::Sfixed32, Wire::Fixed32(v)) => number(v as i32, out),
            (Ty::Sfixed64, Wire::Fixed64(v)) => quoted(v as i64, out),
            (Ty::Bool, Wire::Varint(v)) => out.extend_from_slice(if v != 0 { b"true" } else { b"false" }),
            (Ty::String, Wire::Len(bytes)) => string_field(bytes, out)?,
            (Ty::Bytes, Wire::Len(bytes)) => base64(bytes, out),
            (Ty::Null, Wire::Varint(_)) => out.extend_from_slice(b"null"),
            (Ty::Enum(e), Wire::Varint(v)) => {
                let n = v as i32;
                let names = &self.plan.enums[e].names;
                match names.binary_search_by_key(&n, |(m, _)| *m) {
                    Ok(i) => out.extend_from_slice(&names[i].1),
                    Err(_) => number(n, out),
                }
            }
            (Ty::Message(m), Wire::Len(bytes)) => self.message(m, bytes, depth + 1)?,
            _ => return Err(Unsupported),
        }
        Ok(())
    }

    /// Prints the default of `ty`, for a field without presence that is not on the wire.
    fn default(&mut self, ty: Ty, depth: usize) -> Out {
        match ty {
            Ty::Double | Ty::Float => self.out.extend_from_slice(b"0.0"),
            Ty::Int64 | Ty::Uint64 | Ty::Sint64 | Ty::Fixed64 | Ty::Sfixed64 => self.out.extend_from_slice(b"\"0\""),
            Ty::Int32 | Ty::Uint32 | Ty::Sint32 | Ty::Fixed32 | Ty::Sfixed32 => self.out.push(b'0'),
            Ty::Bool => self.out.extend_from_slice(b"false"),
            Ty::String | Ty::Bytes => self.out.extend_from_slice(b"\"\""),
            Ty::Null => self.out.extend_from_slice(b"null"),
            Ty::Enum(e) => {
                let d = self.plan.enums[e].default;
                self.value(ty, Wire::Varint(d as i64 as u64), depth)?;
            }
            Ty::Message(m) => self.message(m, &[], depth + 1)?,
        }
        Ok(())
    }

    /// The well-known types printed in their own JSON form.
    fn well_known(&mut self, form: Form, desc: &MessageDescriptor, wire: &[u8]) -> Out {
        use std::io::Write as _;
        let out = &mut *self.out;
        let printed = match form {
            Form::Timestamp => seconds_and_nanos(wire).filter(timestamp_in_range).map(|(seconds, nanos)| {
                out.push(b'"');
                switchyard_common::rfc3339::timestamp(seconds, nanos, out);
                out.push(b'"');
            }),
            Form::Duration => prost_types::Duration::decode(wire).ok().filter(duration_in_range).map(|d| {
                let _ = write!(out, "\"{d}\"");
            }),
            Form::Empty => {
                out.extend_from_slice(b"{}");
                Some(())
            }
            _ => prost_reflect::DynamicMessage::decode(desc.clone(), wire).ok().and_then(|m| {
                m.serialize_with_options(&mut serde_json::Serializer::new(&mut *out), &crate::json::PRINT).ok()
            }),
        };
        // Out of range for its JSON form: the general path says why.
        printed.ok_or(Unsupported)
    }
}

/// The oneofs of a message that have a member printed: at most one member of each may be set.
#[derive(Default)]
struct Oneofs(Vec<u32>);

impl Oneofs {
    /// Notes that `field` is set; two members of one oneof go to the general path.
    fn set(&mut self, field: &FieldPlan) -> Out {
        if let Some(oneof) = field.oneof {
            if self.0.contains(&oneof) {
                return Err(Unsupported);
            }
            self.0.push(oneof);
        }
        Ok(())
    }
}

fn comma(first: &mut bool, out: &mut Vec<u8>) {
    if !*first {
        out.push(b',');
    }
    *first = false;
}

/// The width on the wire of a scalar that can come packed (0 for varints); `None` for the
/// types that cannot.
fn packed_width(ty: Ty) -> Option<usize> {
    match ty {
        Ty::Double | Ty::Fixed64 | Ty::Sfixed64 => Some(8),
        Ty::Float | Ty::Fixed32 | Ty::Sfixed32 => Some(4),
        Ty::String | Ty::Bytes | Ty::Message(_) => None,
        _ => Some(0),
    }
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

/// A Timestamp's `seconds` (field 1) and `nanos` (field 2) read straight from the wire, the last
/// occurrence winning as when prost merges them; `None` when anything else is there (the general
/// path decides). prost's generic decoding cost as much as printing the text.
fn seconds_and_nanos(mut wire: &[u8]) -> Option<(i64, i32)> {
    let (mut seconds, mut nanos) = (0, 0);
    while !wire.is_empty() {
        match varint(&mut wire).ok()? {
            0x08 => seconds = varint(&mut wire).ok()? as i64,
            0x10 => nanos = varint(&mut wire).ok()? as i32,
            _ => return None,
        }
    }
    Some((seconds, nanos))
}

/// 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, as the JSON mapping allows.
fn timestamp_in_range(&(seconds, nanos): &(i64, i32)) -> bool {
    switchyard_common::rfc3339::JSON_SECONDS.contains(&seconds) && (0..1_000_000_000).contains(&nanos)
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

    fn print(desc: &MessageDescriptor, wire: &[u8], json_field: Option<&str>) -> Out<Vec<u8>> {
        Plan::new(desc).print(wire, json_field)
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
            // And from the wire, through the ASCII shortcut or around it.
            let mut from_wire = Vec::new();
            string_field(s.as_bytes(), &mut from_wire).unwrap();
            assert_eq!(from_wire, ours, "{s:?}");
        }
        // Not UTF-8: left to the general path, which reports it.
        assert!(string_field(b"ab\xff", &mut Vec::new()).is_err());
        assert!(string_field(&[b'a', 0xc3], &mut Vec::new()).is_err());
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
        same("types.v1.Event", json!({"createdAt": "9999-12-31T23:59:59.999999999Z"}));
        same("types.v1.Event", json!({"createdAt": "1969-12-31T23:59:59.000001Z"}));
        same("types.v1.Event", json!({}));
    }

    /// A pool of one file compiled here: shapes the shipped protos do not have.
    fn compiled(proto: &str) -> DescriptorPool {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shapes.proto");
        std::fs::write(&file, proto).unwrap();
        let set = crate::sources::compile_protos(std::slice::from_ref(&file), &[dir.path().to_path_buf()]).unwrap();
        DescriptorPool::decode(set.as_slice()).unwrap()
    }

    #[test]
    fn recursive_types_high_field_numbers_aliases_and_null_print_as_the_general_path_does() {
        let pool = compiled(
            "syntax = \"proto3\";\npackage shapes;\nimport \"google/protobuf/struct.proto\";\n\
             enum Level { option allow_alias = true; LOW = 0; MIN = 0; HIGH = 2; TOP = 2; }\n\
             message Node { string name = 1; repeated Node children = 2; Node parent = 3; Level level = 4;\n\
               map<int32, Node> by_rank = 5; map<bool, string> flags = 6; google.protobuf.NullValue nothing = 7;\n\
               optional int64 big = 1000; repeated sint32 packed = 300; }\n",
        );
        let desc = pool.get_message_by_name("shapes.Node").unwrap();
        let cases = [
            json!({}),
            json!({"name": "root", "level": "HIGH", "big": "-5", "packed": [-1, 0, 7],
                   "children": [{"name": "a", "children": [{"name": "a1", "level": 2}]}, {}],
                   "parent": {"parent": {"name": "grand"}},
                   "byRank": {"1": {"name": "one"}, "-3": {}}, "flags": {"true": "yes", "false": ""}}),
        ];
        for case in cases {
            let msg = crate::json::from_value(&desc, case.clone()).unwrap();
            let wire = prost::Message::encode_to_vec(&msg);
            let general: Value = serde_json::from_slice(&crate::json::print_message(&msg).unwrap()).unwrap();
            let direct: Value = serde_json::from_slice(&print(&desc, &wire, None).unwrap()).unwrap();
            assert_eq!(direct, general, "{case}");
        }
        // Aliases print by their first name, an unknown number as a number; field 1000 is found
        // beyond the indexed numbers, and an unknown field number beyond them is skipped.
        let wire = [0x20, 0x02, 0xc0, 0x3e, 0x07, 0xa0, 0x1f, 0x01];
        let out: Value = serde_json::from_slice(&print(&desc, &wire, None).unwrap()).unwrap();
        assert_eq!((&out["level"], &out["big"], &out["nothing"]), (&json!("HIGH"), &json!("7"), &Value::Null));
        let out: Value = serde_json::from_slice(&print(&desc, &[0x20, 0x05], None).unwrap()).unwrap();
        assert_eq!(out["level"], json!(5));
    }

    #[test]
    fn fields_in_any_order_on_the_wire_print_as_the_general_path_does() {
        // Pieces of one message, concatenated as a protobuf merge would read them: out of
        // number order, a repeated field's values apart, a scalar given twice (the last wins)
        // together and apart, a map's entries around other fields.
        let desc = pool().get_message_by_name("user.v1.User").unwrap();
        let piece = |json: Value| prost::Message::encode_to_vec(&crate::json::from_value(&desc, json).unwrap());
        let orders: [&[Value]; 5] = [
            &[json!({"roles": ["b"]}), json!({"name": "x"}), json!({"roles": ["c"]}), json!({"id": "u"})],
            &[json!({"name": "x"}), json!({"name": "y"}), json!({"age": 3})],
            &[json!({"name": "x"}), json!({"age": 3}), json!({"name": "y"})],
            &[json!({"metadata": {"k": "1"}}), json!({"id": "u"}), json!({"metadata": {"j": "2"}})],
            &[
                json!({"id": "u", "name": "n", "roles": ["a", "b"], "age": 9, "metadata": {"k": "1", "j": "2"}}),
                json!({"status": "USER_STATUS_ACTIVE"}),
            ],
        ];
        for pieces in orders {
            let wire: Vec<u8> = pieces.iter().cloned().flat_map(piece).collect();
            let msg = prost_reflect::DynamicMessage::decode(desc.clone(), wire.as_slice()).unwrap();
            let general: Value = serde_json::from_slice(&crate::json::print_message(&msg).unwrap()).unwrap();
            let direct: Value = serde_json::from_slice(&print(&desc, &wire, None).unwrap()).unwrap();
            assert_eq!(direct, general, "{pieces:?}");
        }
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
