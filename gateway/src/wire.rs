//! Messages as protobuf wire bytes, for streaming calls: JSON (or raw bytes) in, encoded once by
//! the runtime from the descriptor; one bytes field out, sliced from the encoded response
//! without decoding it.

use crate::error::GatewayError;
use crate::rules::BodySpec;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message as _;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, encode_key, encode_varint, skip_field};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value as PValue};
use serde_json::{Map, Value};

/// One encoded message as a list of pieces written back to back, so a large bytes field is
/// never copied just to be prefixed with its tag.
#[derive(Debug, Clone, Default)]
pub struct EncodedMessage(pub Vec<Bytes>);

impl EncodedMessage {
    /// The total encoded length.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// Whether the message is empty (all fields default).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the pieces to `dst`.
    pub fn write_to(self, dst: &mut impl BufMut) {
        for piece in self.0 {
            dst.put(piece);
        }
    }
}

/// The last value of a length-delimited field `number` in an encoded message, sliced without a
/// copy; empty when the field is absent. `None` when the bytes are not a valid message.
pub fn extract_field(msg: &Bytes, number: u32) -> Option<Bytes> {
    let mut buf = msg.clone();
    let mut found = Bytes::new();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf).ok()?;
        if tag == number && wire_type == WireType::LengthDelimited {
            let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
            if len > buf.remaining() {
                return None;
            }
            let start = msg.len() - buf.remaining();
            found = msg.slice(start..start + len);
            buf.advance(len);
        } else {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default()).ok()?;
        }
    }
    Some(found)
}

/// Values from the path and the query that every streamed message must carry.
///
/// A message that leaves such a field unset gets it; one that sets it to something else is
/// refused, since the URL names what the stream is about (e.g. the chat room).
#[derive(Clone)]
pub struct StreamContext {
    desc: MessageDescriptor,
    body: BodySpec,
    /// The path and query values, as a message.
    fixed: DynamicMessage,
}

fn bad(msg: impl Into<String>) -> GatewayError {
    GatewayError::BadRequest(msg.into())
}

fn deserialize(desc: &MessageDescriptor, value: Value) -> Result<DynamicMessage, GatewayError> {
    crate::json::from_value(desc, value).map_err(GatewayError::InvalidMessage)
}

/// Copies every field `fixed` sets into `msg` where `msg` leaves it unset; a different value
/// already there is an error. Nested messages (`{user.id}`) are compared field by field.
fn apply_fixed(msg: &mut DynamicMessage, fixed: &DynamicMessage, prefix: &str) -> Result<(), GatewayError> {
    for (field, want) in fixed.fields() {
        let name = if prefix.is_empty() { field.name().to_owned() } else { format!("{prefix}.{}", field.name()) };
        if !msg.has_field(&field) {
            msg.set_field(&field, want.clone());
            continue;
        }
        let nested = matches!(field.kind(), Kind::Message(ref m) if !m.full_name().starts_with("google.protobuf."))
            && !field.is_list()
            && !field.is_map();
        if nested && let (Some(inner_want), PValue::Message(inner)) = (want.as_message(), msg.get_field_mut(&field)) {
            apply_fixed(inner, inner_want, &name)?;
        } else if msg.get_field(&field).as_ref() != want {
            return Err(bad(format!(
                "{name} is {:?} in the message but {want:?} in the URL",
                msg.get_field(&field).as_ref()
            )));
        }
    }
    Ok(())
}

impl StreamContext {
    /// `fixed` is the JSON object of the path and query values (`bind::url_values`).
    pub fn new(desc: MessageDescriptor, body: BodySpec, fixed: Value) -> Result<Self, GatewayError> {
        let fixed = deserialize(&desc, fixed)?;
        Ok(StreamContext { desc, body, fixed })
    }

    /// Encodes one streamed JSON message (a line of NDJSON, a WebSocket frame).
    pub fn encode_json(&self, text: &[u8]) -> Result<EncodedMessage, GatewayError> {
        let value = crate::json::parse_value(text).map_err(GatewayError::InvalidMessage)?;
        let obj = match (&self.body, value) {
            (BodySpec::Field(f), v) => Map::from_iter([(f.json_name().to_owned(), v)]),
            (_, Value::Object(o)) => o,
            (_, _) => return Err(bad("each message must be a JSON object")),
        };
        let mut msg = deserialize(&self.desc, Value::Object(obj))?;
        apply_fixed(&mut msg, &self.fixed, "")?;
        Ok(EncodedMessage(vec![Bytes::from(msg.encode_to_vec())]))
    }
}

/// Builds the messages of a raw-bytes upload: the fields from the path and query, encoded once,
/// then the counter and a piece of the body in the bytes field.
#[derive(Clone)]
pub struct RawEncoder {
    head: Bytes,
    bytes_field: u32,
    counter: Option<(u32, Kind)>,
}

impl RawEncoder {
    /// `fixed` holds the path and query values, as JSON.
    pub fn new(
        desc: &MessageDescriptor,
        fixed: Value,
        bytes_field: &FieldDescriptor,
        counter: Option<&FieldDescriptor>,
    ) -> Result<Self, GatewayError> {
        let mut head = deserialize(desc, fixed)?;
        head.clear_field(bytes_field);
        if let Some(c) = counter {
            head.clear_field(c);
        }
        Ok(RawEncoder {
            head: Bytes::from(head.encode_to_vec()),
            bytes_field: bytes_field.number(),
            counter: counter.map(|c| (c.number(), c.kind())),
        })
    }

    /// The message carrying piece number `n`.
    pub fn encode(&self, n: u64, data: Bytes) -> EncodedMessage {
        let mut meta = BytesMut::with_capacity(24);
        if let Some((number, kind)) = &self.counter
            && n > 0
        {
            match kind {
                Kind::Sint32 | Kind::Sint64 => {
                    encode_key(*number, WireType::Varint, &mut meta);
                    encode_varint(n << 1, &mut meta);
                }
                Kind::Fixed32 | Kind::Sfixed32 => {
                    encode_key(*number, WireType::ThirtyTwoBit, &mut meta);
                    meta.put_u32_le(n as u32);
                }
                Kind::Fixed64 | Kind::Sfixed64 => {
                    encode_key(*number, WireType::SixtyFourBit, &mut meta);
                    meta.put_u64_le(n);
                }
                _ => {
                    encode_key(*number, WireType::Varint, &mut meta);
                    encode_varint(n, &mut meta);
                }
            }
        }
        encode_key(self.bytes_field, WireType::LengthDelimited, &mut meta);
        encode_varint(data.len() as u64, &mut meta);
        EncodedMessage(vec![self.head.clone(), meta.freeze(), data])
    }
}

/// Whether a field can number raw pieces.
pub fn is_counter_kind(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Int32
            | Kind::Int64
            | Kind::Uint32
            | Kind::Uint64
            | Kind::Sint32
            | Kind::Sint64
            | Kind::Fixed32
            | Kind::Fixed64
            | Kind::Sfixed32
            | Kind::Sfixed64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;
    use serde_json::json;
    use switchyard_proto::upload::v1::Chunk;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    fn concat(m: EncodedMessage) -> Bytes {
        let mut b = BytesMut::new();
        m.write_to(&mut b);
        b.freeze()
    }

    #[test]
    fn raw_pieces_decode_as_real_chunks() {
        let desc = pool().get_message_by_name("upload.v1.Chunk").unwrap();
        let data = desc.get_field_by_name("data").unwrap();
        let seq = desc.get_field_by_name("sequence").unwrap();
        let enc = RawEncoder::new(&desc, json!({"uploadId": "u1", "sequence": 9, "data": "AAAA"}), &data, Some(&seq))
            .unwrap();
        for n in [0u64, 1, 300] {
            let bytes = concat(enc.encode(n, Bytes::from_static(b"hello")));
            let chunk = Chunk::decode(bytes.clone()).unwrap();
            assert_eq!(
                (chunk.upload_id.as_str(), chunk.sequence as u64, chunk.data.as_slice()),
                ("u1", n, &b"hello"[..])
            );
            assert_eq!(extract_field(&bytes, 3).unwrap(), Bytes::from_static(b"hello"));
        }
    }

    #[test]
    fn extract_field_handles_absence_and_garbage() {
        let c = Chunk { upload_id: "x".into(), sequence: 1, data: vec![] };
        assert_eq!(extract_field(&Bytes::from(c.encode_to_vec()), 3), Some(Bytes::new()));
        assert_eq!(extract_field(&Bytes::from_static(&[0x1a, 0x05, 1]), 3), None);
        assert_eq!(extract_field(&Bytes::from_static(&[0xff]), 3), None);
    }

    #[test]
    fn stream_context_fills_and_guards_url_fields() {
        let desc = pool().get_message_by_name("chat.v1.ChatMessage").unwrap();
        let ctx = StreamContext::new(desc, BodySpec::Whole, json!({"sessionId": "room"})).unwrap();
        use switchyard_proto::chat::v1::ChatMessage;
        let m = ChatMessage::decode(concat(ctx.encode_json(br#"{"message":"hi","junk":1}"#).unwrap())).unwrap();
        assert_eq!((m.session_id.as_str(), m.message.as_str()), ("room", "hi"));
        let m =
            ChatMessage::decode(concat(ctx.encode_json(br#"{"session_id":"room","message":"x"}"#).unwrap())).unwrap();
        assert_eq!(m.session_id, "room");
        assert!(ctx.encode_json(br#"{"sessionId":"other"}"#).is_err());
        assert!(ctx.encode_json(b"[1]").is_err());
        assert!(ctx.encode_json(b"{oops").is_err());
        assert!(ctx.encode_json(br#"{"timestamp":"soon"}"#).is_err());
    }
}
