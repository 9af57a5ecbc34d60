//! The JSON cases of the protobuf conformance suite that apply to proto3
//! (protocolbuffers/protobuf, conformance/binary_json_conformance_suite.cc; names kept), run
//! through every way a message reaches the gateway: a unary body, an NDJSON stream line, a
//! WebSocket frame, and — where the field kind has a textual form — the query string.
//!
//! The messages are a test-only proto (tests/protos/conformance), compiled here by protox and
//! served by a backend that echoes what it gets, so each case checks the gateway's mapping both
//! ways: the JSON in, and the canonical JSON out.

mod common;

use bytes::{Buf, Bytes};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tokio_tungstenite::tungstenite::Message as Ws;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// What a case expects.
enum Want {
    /// Accepted; the echoed message has these fields (`"<absent>"`: the field is not printed).
    Ok(Value),
    /// Refused with 400 (close code 1011 on a WebSocket).
    Fail,
}

struct Case {
    name: &'static str,
    input: &'static str,
    want: Want,
}

fn ok(name: &'static str, input: &'static str, want: Value) -> Case {
    Case { name, input, want: Want::Ok(want) }
}

fn fail(name: &'static str, input: &'static str) -> Case {
    Case { name, input, want: Want::Fail }
}

/// The suite's JSON cases for proto3 (REQUIRED and RECOMMENDED), with the expected output.
fn cases() -> Vec<Case> {
    vec![
        // Field names: the JSON name and the proto name are both accepted.
        ok(
            "FieldNameInSnakeCase",
            r#"{"fieldname1": 1, "field_name2": 2, "_field_name3": 3, "field__name4_": 4}"#,
            json!({"fieldname1": 1, "fieldName2": 2, "FieldName3": 3, "fieldName4": 4}),
        ),
        ok(
            "FieldNameWithNumbers",
            r#"{"field0name5": 5, "field_0_name6": 6}"#,
            json!({"field0name5": 5, "field0Name6": 6}),
        ),
        ok(
            "FieldNameWithMixedCases",
            r#"{"fieldName7": 7, "FieldName8": 8, "field_Name9": 9, "Field_Name10": 10, "FIELD_NAME11": 11, "FIELD_name12": 12}"#,
            json!({"fieldName7": 7, "FieldName8": 8, "fieldName9": 9, "FieldName10": 10, "FIELDNAME11": 11, "FIELDName12": 12}),
        ),
        ok(
            "FieldNameWithDoubleUnderscores",
            r#"{"__field_name13": 13, "__Field_name14": 14, "field__name15": 15, "field__Name16": 16, "field_name17__": 17, "Field_name18__": 18}"#,
            json!({"FieldName13": 13, "FieldName14": 14, "fieldName15": 15, "fieldName16": 16, "fieldName17": 17, "FieldName18": 18}),
        ),
        ok(
            "FieldNameInLowerCamelCase",
            r#"{"optionalInt32": 1, "optionalNestedMessage": {"a": 2}}"#,
            json!({"optionalInt32": 1, "optionalNestedMessage": {"a": 2}}),
        ),
        fail("FieldNameDuplicate", r#"{"optionalNestedMessage": {"a": 1}, "optionalNestedMessage": {}}"#),
        fail(
            "FieldNameDuplicateDifferentCasing1",
            r#"{"optional_nested_message": {"a": 1}, "optionalNestedMessage": {}}"#,
        ),
        fail(
            "FieldNameDuplicateDifferentCasing2",
            r#"{"optionalNestedMessage": {"a": 1}, "optional_nested_message": {}}"#,
        ),
        fail("FieldNameDuplicateNested", r#"{"optionalNestedMessage": {"a": 1, "a": 2}}"#),
        ok("IgnoreUnknownJsonNumber", r#"{"unknown": 1}"#, json!({})),
        ok("IgnoreUnknownJsonString", r#"{"unknown": "a"}"#, json!({})),
        ok("IgnoreUnknownJsonTrue", r#"{"unknown": true}"#, json!({})),
        ok("IgnoreUnknownJsonNull", r#"{"unknown": null}"#, json!({})),
        ok("IgnoreUnknownJsonObject", r#"{"unknown": {"a": 1}}"#, json!({})),
        ok("IgnoreUnknownJsonArray", r#"{"unknown": [1, 2]}"#, json!({})),
        ok("IgnoreUnknownInWellKnownEmpty", r#"{"optionalEmpty": {"unknown": 1}}"#, json!({"optionalEmpty": {}})),
        // Integers.
        ok("Int32FieldMaxValue", r#"{"optionalInt32": 2147483647}"#, json!({"optionalInt32": 2147483647})),
        ok("Int32FieldMinValue", r#"{"optionalInt32": -2147483648}"#, json!({"optionalInt32": -2147483648})),
        ok("Uint32FieldMaxValue", r#"{"optionalUint32": 4294967295}"#, json!({"optionalUint32": 4294967295u32})),
        ok(
            "Int64FieldMaxValue",
            r#"{"optionalInt64": "9223372036854775807"}"#,
            json!({"optionalInt64": "9223372036854775807"}),
        ),
        ok(
            "Int64FieldMinValue",
            r#"{"optionalInt64": "-9223372036854775808"}"#,
            json!({"optionalInt64": "-9223372036854775808"}),
        ),
        ok(
            "Uint64FieldMaxValue",
            r#"{"optionalUint64": "18446744073709551615"}"#,
            json!({"optionalUint64": "18446744073709551615"}),
        ),
        ok(
            "Int64FieldMaxValueNotQuoted",
            r#"{"optionalInt64": 9223372036854775807}"#,
            json!({"optionalInt64": "9223372036854775807"}),
        ),
        ok(
            "Uint64FieldMaxValueNotQuoted",
            r#"{"optionalUint64": 18446744073709551615}"#,
            json!({"optionalUint64": "18446744073709551615"}),
        ),
        ok("Int32FieldStringValue", r#"{"optionalInt32": "2147483647"}"#, json!({"optionalInt32": 2147483647})),
        ok(
            "Int32FieldStringValueEscaped",
            r#"{"optionalInt32": "2\u003147483647"}"#,
            json!({"optionalInt32": 2147483647}),
        ),
        ok("Int32FieldExponentialFormat", r#"{"optionalInt32": 1e5}"#, json!({"optionalInt32": 100000})),
        ok("Int32FieldFloatTrailingZero", r#"{"optionalInt32": 100000.000}"#, json!({"optionalInt32": 100000})),
        ok("Int32FieldOneDotZero", r#"{"optionalInt32": 1.0}"#, json!({"optionalInt32": 1})),
        ok("Sint32FieldMinValue", r#"{"optionalSint32": -2147483648}"#, json!({"optionalSint32": -2147483648})),
        ok(
            "Sint64FieldMaxValue",
            r#"{"optionalSint64": "9223372036854775807"}"#,
            json!({"optionalSint64": "9223372036854775807"}),
        ),
        ok("Fixed32FieldMaxValue", r#"{"optionalFixed32": 4294967295}"#, json!({"optionalFixed32": 4294967295u32})),
        ok(
            "Fixed64FieldMaxValue",
            r#"{"optionalFixed64": "18446744073709551615"}"#,
            json!({"optionalFixed64": "18446744073709551615"}),
        ),
        ok("Sfixed32FieldMinValue", r#"{"optionalSfixed32": -2147483648}"#, json!({"optionalSfixed32": -2147483648})),
        ok(
            "Sfixed64FieldMinValue",
            r#"{"optionalSfixed64": "-9223372036854775808"}"#,
            json!({"optionalSfixed64": "-9223372036854775808"}),
        ),
        fail("Int32FieldTooLarge", r#"{"optionalInt32": 2147483648}"#),
        fail("Int32FieldTooSmall", r#"{"optionalInt32": -2147483649}"#),
        fail("Uint32FieldTooLarge", r#"{"optionalUint32": 4294967296}"#),
        fail("Uint32FieldNegative", r#"{"optionalUint32": -1}"#),
        fail("Int64FieldTooLarge", r#"{"optionalInt64": "9223372036854775808"}"#),
        fail("Int64FieldTooSmall", r#"{"optionalInt64": "-9223372036854775809"}"#),
        fail("Uint64FieldTooLarge", r#"{"optionalUint64": "18446744073709551616"}"#),
        fail("Int32FieldNotInteger", r#"{"optionalInt32": 0.5}"#),
        fail("Uint32FieldNotInteger", r#"{"optionalUint32": 0.5}"#),
        fail("Int64FieldNotInteger", r#"{"optionalInt64": "0.5"}"#),
        fail("Uint64FieldNotIntegerNumber", r#"{"optionalUint64": 0.5}"#),
        fail("Uint64FieldNotInteger", r#"{"optionalUint64": "0.5"}"#),
        fail("Int32FieldNotNumber", r#"{"optionalInt32": "3x3"}"#),
        fail("Int64FieldNotNumber", r#"{"optionalInt64": "3x3"}"#),
        fail("Int32FieldLeadingSpace", r#"{"optionalInt32": " 1"}"#),
        fail("Int32FieldTrailingSpace", r#"{"optionalInt32": "1 "}"#),
        fail("Int32FieldPlusSign", r#"{"optionalInt32": +1}"#),
        fail("Int32FieldLeadingZero", r#"{"optionalInt32": 01}"#),
        fail("Int32FieldNegativeWithLeadingZero", r#"{"optionalInt32": -01}"#),
        fail("Int32FieldBoolean", r#"{"optionalInt32": true}"#),
        // Floating point.
        ok("FloatFieldMinPositiveValue", r#"{"optionalFloat": 1.175494e-38}"#, json!({"optionalFloat": 1.175494e-38})),
        ok("FloatFieldMaxPositiveValue", r#"{"optionalFloat": 3.402823e+38}"#, json!({"optionalFloat": 3.402823e38})),
        ok("FloatFieldNan", r#"{"optionalFloat": "NaN"}"#, json!({"optionalFloat": "NaN"})),
        ok("FloatFieldInfinity", r#"{"optionalFloat": "Infinity"}"#, json!({"optionalFloat": "Infinity"})),
        ok("FloatFieldNegativeInfinity", r#"{"optionalFloat": "-Infinity"}"#, json!({"optionalFloat": "-Infinity"})),
        ok("FloatFieldQuotedValue", r#"{"optionalFloat": "1"}"#, json!({"optionalFloat": 1.0})),
        ok("FloatFieldNormalizeQuietNan", r#"{"optionalFloat": "NaN"}"#, json!({"optionalFloat": "NaN"})),
        fail("FloatFieldTooSmall", r#"{"optionalFloat": -3.502823e+38}"#),
        fail("FloatFieldTooLarge", r#"{"optionalFloat": 3.502823e+38}"#),
        ok(
            "DoubleFieldMinPositiveValue",
            r#"{"optionalDouble": 2.22507e-308}"#,
            json!({"optionalDouble": 2.22507e-308}),
        ),
        ok(
            "DoubleFieldMaxPositiveValue",
            r#"{"optionalDouble": 1.79769e+308}"#,
            json!({"optionalDouble": 1.79769e308}),
        ),
        ok("DoubleFieldInfinity", r#"{"optionalDouble": "Infinity"}"#, json!({"optionalDouble": "Infinity"})),
        ok("DoubleFieldNan", r#"{"optionalDouble": "NaN"}"#, json!({"optionalDouble": "NaN"})),
        ok("DoubleFieldQuotedValue", r#"{"optionalDouble": "1"}"#, json!({"optionalDouble": 1.0})),
        fail("DoubleFieldTooLarge", r#"{"optionalDouble": "1.89769e+308"}"#),
        fail("FloatFieldNanNotQuoted", r#"{"optionalFloat": NaN}"#),
        fail("FloatFieldInfinityNotQuoted", r#"{"optionalFloat": Infinity}"#),
        // Booleans.
        ok("BoolFieldTrue", r#"{"optionalBool": true}"#, json!({"optionalBool": true})),
        ok("BoolFieldFalse", r#"{"optionalBool": false}"#, json!({"optionalBool": false})),
        fail("BoolFieldIntegerZero", r#"{"optionalBool": 0}"#),
        fail("BoolFieldIntegerOne", r#"{"optionalBool": 1}"#),
        fail("BoolFieldCamelCaseTrue", r#"{"optionalBool": True}"#),
        fail("BoolFieldDoubleQuotedFalse", r#"{"optionalBool": "false"}"#),
        // Strings.
        ok("StringField", r#"{"optionalString": "Hello world!"}"#, json!({"optionalString": "Hello world!"})),
        ok("StringFieldUnicode", r#"{"optionalString": "\u8C37\u6B4C"}"#, json!({"optionalString": "谷歌"})),
        ok(
            "StringFieldEscape",
            r#"{"optionalString": "\"\\\/\b\f\n\r\t"}"#,
            json!({"optionalString": "\"\\/\u{8}\u{c}\n\r\t"}),
        ),
        ok("StringFieldSurrogatePair", r#"{"optionalString": "\uD83D\uDE01"}"#, json!({"optionalString": "😁"})),
        // RECOMMENDED, not followed: JSON (RFC 8259) has only the lowercase \u escape, and
        // serde_json keeps to it (see README, "JSON mapping").
        fail("StringFieldUppercaseEscapeLetter", r#"{"optionalString": "\U8C37\U6b4C"}"#),
        fail("StringFieldUnpairedHighSurrogate", r#"{"optionalString": "\uD800"}"#),
        fail("StringFieldUnpairedLowSurrogate", r#"{"optionalString": "\uDC00"}"#),
        fail("StringFieldSingleQuoteKey", r#"{'optionalString': "Hello world!"}"#),
        fail("StringFieldSingleQuoteValue", r#"{"optionalString": 'Hello world!'}"#),
        fail("StringFieldNotAString", r#"{"optionalString": 12345}"#),
        fail("StringFieldInvalidEscape", r#"{"optionalString": "\uXXXX\u6B4C"}"#),
        // Bytes: standard and URL-safe base64.
        ok("BytesField", r#"{"optionalBytes": "AQI="}"#, json!({"optionalBytes": "AQI="})),
        ok("BytesFieldBase64Url", r#"{"optionalBytes": "-_"}"#, json!({"optionalBytes": "+w=="})),
        ok("BytesFieldNoPadding", r#"{"optionalBytes": "AQI"}"#, json!({"optionalBytes": "AQI="})),
        fail("BytesFieldInvalidBase64Characters", r#"{"optionalBytes": "-_=]"}"#),
        // Enums: open, by name or number.
        ok("EnumField", r#"{"optionalNestedEnum": "FOO"}"#, json!({"optionalNestedEnum": "FOO"})),
        ok("EnumFieldWithAlias", r#"{"optionalNestedEnum": "ALIAS_BAZ"}"#, json!({"optionalNestedEnum": "BAZ"})),
        ok("EnumFieldNumericValueZero", r#"{"optionalNestedEnum": 0}"#, json!({"optionalNestedEnum": "FOO"})),
        ok("EnumFieldNumericValueNonZero", r#"{"optionalNestedEnum": 1}"#, json!({"optionalNestedEnum": "BAR"})),
        ok("EnumFieldNegative", r#"{"optionalNestedEnum": "NEG"}"#, json!({"optionalNestedEnum": "NEG"})),
        ok("EnumFieldUnknownValue", r#"{"optionalNestedEnum": 123}"#, json!({"optionalNestedEnum": 123})),
        ok(
            "IgnoreUnknownEnumStringValue",
            r#"{"optionalNestedEnum": "UNKNOWN_ENUM_VALUE"}"#,
            json!({"optionalNestedEnum": "FOO"}),
        ),
        ok(
            "IgnoreUnknownEnumStringValueInRepeatedField",
            r#"{"repeatedNestedEnum": ["FOO", "UNKNOWN_ENUM_VALUE", "BAR"]}"#,
            json!({"repeatedNestedEnum": ["FOO", "BAR"]}),
        ),
        ok(
            "IgnoreUnknownEnumStringValueInMapValue",
            r#"{"mapStringNestedEnum": {"key": "UNKNOWN_ENUM_VALUE"}}"#,
            json!({"mapStringNestedEnum": {}}),
        ),
        ok("ForeignEnum", r#"{"optionalForeignEnum": "FOREIGN_BAR"}"#, json!({"optionalForeignEnum": "FOREIGN_BAR"})),
        fail("EnumFieldNotQuoted", r#"{"optionalNestedEnum": FOO}"#),
        // Null means "not set", for every field kind.
        ok("Int32FieldNull", r#"{"optionalInt32": null}"#, json!({"optionalInt32": 0})),
        ok("StringFieldNull", r#"{"optionalString": null}"#, json!({"optionalString": ""})),
        ok("BytesFieldNull", r#"{"optionalBytes": null}"#, json!({"optionalBytes": ""})),
        ok("BoolFieldNull", r#"{"optionalBool": null}"#, json!({"optionalBool": false})),
        ok("EnumFieldNull", r#"{"optionalNestedEnum": null}"#, json!({"optionalNestedEnum": "FOO"})),
        ok("RepeatedFieldNull", r#"{"repeatedInt32": null}"#, json!({"repeatedInt32": []})),
        ok("MapFieldNull", r#"{"mapStringString": null}"#, json!({"mapStringString": {}})),
        ok("MessageFieldNull", r#"{"optionalNestedMessage": null}"#, json!({"optionalNestedMessage": "<absent>"})),
        ok("WrapperFieldNull", r#"{"optionalInt32Wrapper": null}"#, json!({"optionalInt32Wrapper": "<absent>"})),
        ok("DurationFieldNull", r#"{"optionalDuration": null}"#, json!({"optionalDuration": "<absent>"})),
        ok("Proto3OptionalNull", r#"{"proto3OptionalInt32": null}"#, json!({"proto3OptionalInt32": "<absent>"})),
        ok("OneofFieldNull", r#"{"oneofUint32": null}"#, json!({"oneofUint32": "<absent>"})),
        ok("NullValueInOtherOneofNewFormat", r#"{"oneofNullValue": null}"#, json!({"oneofNullValue": null})),
        ok("OptionalNullValue", r#"{"optionalNullValue": null}"#, json!({"optionalNullValue": null})),
        fail("RepeatedFieldElementNull", r#"{"repeatedInt32": [1, null]}"#),
        // Proto3 optional: presence survives the default value.
        ok("Proto3OptionalZero", r#"{"proto3OptionalInt32": 0}"#, json!({"proto3OptionalInt32": 0})),
        // Repeated fields.
        ok("RepeatedFieldEmpty", r#"{"repeatedInt32": []}"#, json!({"repeatedInt32": []})),
        ok(
            "RepeatedInt64AsNumbersOrStrings",
            r#"{"repeatedInt64": [1, "2", 3e0]}"#,
            json!({"repeatedInt64": ["1", "2", "3"]}),
        ),
        ok(
            "RepeatedNestedMessage",
            r#"{"repeatedNestedMessage": [{"a": 1}, {}]}"#,
            json!({"repeatedNestedMessage": [{"a": 1}, {"a": 0}]}),
        ),
        ok(
            "RepeatedFloatSpecialValues",
            r#"{"repeatedFloat": ["NaN", "-Infinity", 1.5]}"#,
            json!({"repeatedFloat": ["NaN", "-Infinity", 1.5]}),
        ),
        fail("RepeatedFieldWrongElementTypeExpectingIntegersGotBool", r#"{"repeatedInt32": [1, false, 3, 4]}"#),
        fail("RepeatedFieldWrongElementTypeExpectingStringsGotInt", r#"{"repeatedString": ["1", 2, "3", "4"]}"#),
        fail("RepeatedFieldWrongElementTypeExpectingMessagesGotInt", r#"{"repeatedNestedMessage": [{"a": 1}, 2]}"#),
        fail("RepeatedFieldTrailingComma", r#"{"repeatedInt32": [1, 2, 3, 4,]}"#),
        fail("RepeatedFieldNotAList", r#"{"repeatedInt32": 1}"#),
        // Maps: keys are strings of the key type.
        ok("Int32MapField", r#"{"mapInt32Int32": {"1": 2, "3": 4}}"#, json!({"mapInt32Int32": {"1": 2, "3": 4}})),
        ok("Int64MapField", r#"{"mapInt64Int64": {"1": 2}}"#, json!({"mapInt64Int64": {"1": "2"}})),
        ok("Uint32MapField", r#"{"mapUint32Uint32": {"1": 2}}"#, json!({"mapUint32Uint32": {"1": 2}})),
        ok(
            "BoolMapField",
            r#"{"mapBoolBool": {"false": true, "true": false}}"#,
            json!({"mapBoolBool": {"false": true, "true": false}}),
        ),
        ok(
            "MessageMapField",
            r#"{"mapStringNestedMessage": {"hello": {"a": 1234}, "world": {}}}"#,
            json!({"mapStringNestedMessage": {"hello": {"a": 1234}, "world": {"a": 0}}}),
        ),
        fail("MapFieldKeyIsNotAnInteger", r#"{"mapInt32Int32": {"x": 2}}"#),
        fail("MapFieldValueIsNull", r#"{"mapInt32Int32": {"1": null}}"#),
        fail("BoolMapFieldKeyNotQuoted", r#"{"mapBoolBool": {true: true}}"#),
        // Oneofs.
        ok("OneofFieldUint32", r#"{"oneofUint32": 5}"#, json!({"oneofUint32": 5, "oneofString": "<absent>"})),
        ok("OneofFieldMessage", r#"{"oneofNestedMessage": {"a": 1}}"#, json!({"oneofNestedMessage": {"a": 1}})),
        ok("OneofZeroUint32", r#"{"oneofUint32": 0}"#, json!({"oneofUint32": 0})),
        fail("OneofFieldDuplicate", r#"{"oneofUint32": 1, "oneofString": "test"}"#),
        // Nested messages.
        ok(
            "NestedMessageRecursive",
            r#"{"optionalNestedMessage": {"corecursive": {"optionalInt32": 7}}}"#,
            json!({"optionalNestedMessage": {"a": 0, "corecursive": {"optionalInt32": 7}}}),
        ),
        fail("MessageFieldNotAnObject", r#"{"optionalNestedMessage": 1}"#),
        // Wrappers: the plain value.
        ok("OptionalBoolWrapper", r#"{"optionalBoolWrapper": false}"#, json!({"optionalBoolWrapper": false})),
        ok("OptionalInt32Wrapper", r#"{"optionalInt32Wrapper": 0}"#, json!({"optionalInt32Wrapper": 0})),
        ok(
            "OptionalInt64Wrapper",
            r#"{"optionalInt64Wrapper": "9223372036854775807"}"#,
            json!({"optionalInt64Wrapper": "9223372036854775807"}),
        ),
        ok(
            "OptionalUint64Wrapper",
            r#"{"optionalUint64Wrapper": 18446744073709551615}"#,
            json!({"optionalUint64Wrapper": "18446744073709551615"}),
        ),
        ok(
            "OptionalFloatWrapper",
            r#"{"optionalFloatWrapper": "Infinity"}"#,
            json!({"optionalFloatWrapper": "Infinity"}),
        ),
        ok("OptionalDoubleWrapper", r#"{"optionalDoubleWrapper": 1.5}"#, json!({"optionalDoubleWrapper": 1.5})),
        ok("OptionalStringWrapper", r#"{"optionalStringWrapper": ""}"#, json!({"optionalStringWrapper": ""})),
        ok("OptionalBytesWrapper", r#"{"optionalBytesWrapper": "AQI="}"#, json!({"optionalBytesWrapper": "AQI="})),
        ok("RepeatedWrapper", r#"{"repeatedInt32Wrapper": [0, 1]}"#, json!({"repeatedInt32Wrapper": [0, 1]})),
        fail("OptionalInt32WrapperTooLarge", r#"{"optionalInt32Wrapper": 2147483648}"#),
        // Duration.
        ok(
            "DurationMinValue",
            r#"{"optionalDuration": "-315576000000.999999999s"}"#,
            json!({"optionalDuration": "-315576000000.999999999s"}),
        ),
        ok(
            "DurationMaxValue",
            r#"{"optionalDuration": "315576000000.999999999s"}"#,
            json!({"optionalDuration": "315576000000.999999999s"}),
        ),
        ok(
            "DurationRepeatedValue",
            r#"{"repeatedDuration": ["1.5s", "-1.5s"]}"#,
            json!({"repeatedDuration": ["1.500s", "-1.500s"]}),
        ),
        ok(
            "DurationHasZeroFractionalDigit",
            r#"{"optionalDuration": "1.000000000s"}"#,
            json!({"optionalDuration": "1s"}),
        ),
        ok("DurationHas3FractionalDigits", r#"{"optionalDuration": "1.010s"}"#, json!({"optionalDuration": "1.010s"})),
        ok(
            "DurationHas6FractionalDigits",
            r#"{"optionalDuration": "1.000010s"}"#,
            json!({"optionalDuration": "1.000010s"}),
        ),
        ok(
            "DurationHas9FractionalDigits",
            r#"{"optionalDuration": "1.000000010s"}"#,
            json!({"optionalDuration": "1.000000010s"}),
        ),
        fail("DurationMissingS", r#"{"optionalDuration": "1"}"#),
        fail("DurationJsonInputTooSmall", r#"{"optionalDuration": "-315576000001.000000000s"}"#),
        fail("DurationJsonInputTooLarge", r#"{"optionalDuration": "315576000001.000000000s"}"#),
        fail("DurationNotAString", r#"{"optionalDuration": 1}"#),
        // Timestamp.
        ok(
            "TimestampMinValue",
            r#"{"optionalTimestamp": "0001-01-01T00:00:00Z"}"#,
            json!({"optionalTimestamp": "0001-01-01T00:00:00Z"}),
        ),
        ok(
            "TimestampMaxValue",
            r#"{"optionalTimestamp": "9999-12-31T23:59:59.999999999Z"}"#,
            json!({"optionalTimestamp": "9999-12-31T23:59:59.999999999Z"}),
        ),
        ok(
            "TimestampRepeatedValue",
            r#"{"repeatedTimestamp": ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"]}"#,
            json!({"repeatedTimestamp": ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"]}),
        ),
        ok(
            "TimestampWithPositiveOffset",
            r#"{"optionalTimestamp": "1970-01-01T08:00:01+08:00"}"#,
            json!({"optionalTimestamp": "1970-01-01T00:00:01Z"}),
        ),
        ok(
            "TimestampWithNegativeOffset",
            r#"{"optionalTimestamp": "1969-12-31T16:00:01-08:00"}"#,
            json!({"optionalTimestamp": "1970-01-01T00:00:01Z"}),
        ),
        ok(
            "TimestampZeroNormalized",
            r#"{"optionalTimestamp": "1969-12-31T16:00:00-08:00"}"#,
            json!({"optionalTimestamp": "1970-01-01T00:00:00Z"}),
        ),
        ok(
            "TimestampHas3FractionalDigits",
            r#"{"optionalTimestamp": "1970-01-01T00:00:00.010Z"}"#,
            json!({"optionalTimestamp": "1970-01-01T00:00:00.010Z"}),
        ),
        fail("TimestampJsonInputTooSmall", r#"{"optionalTimestamp": "0000-01-01T00:00:00Z"}"#),
        fail("TimestampJsonInputTooLarge", r#"{"optionalTimestamp": "10000-01-01T00:00:00Z"}"#),
        fail("TimestampJsonInputMissingZ", r#"{"optionalTimestamp": "0001-01-01T00:00:00"}"#),
        fail("TimestampJsonInputMissingT", r#"{"optionalTimestamp": "0001-01-01 00:00:00Z"}"#),
        fail("TimestampJsonInputLowercaseZ", r#"{"optionalTimestamp": "0001-01-01T00:00:00z"}"#),
        fail("TimestampJsonInputLowercaseT", r#"{"optionalTimestamp": "0001-01-01t00:00:00Z"}"#),
        // FieldMask.
        ok("FieldMask", r#"{"optionalFieldMask": "foo,barBaz"}"#, json!({"optionalFieldMask": "foo,barBaz"})),
        fail("FieldMaskInvalidCharacter", r#"{"optionalFieldMask": "foo,bar_bar"}"#),
        // Struct, Value, ListValue.
        ok(
            "Struct",
            r#"{"optionalStruct": {"nullValue": null, "intValue": 1234, "boolValue": true, "doubleValue": 1234.5678, "stringValue": "Hello world!", "listValue": [1234, "5678"], "objectValue": {"value": 0}}}"#,
            json!({"optionalStruct": {"nullValue": null, "intValue": 1234.0, "boolValue": true, "doubleValue": 1234.5678, "stringValue": "Hello world!", "listValue": [1234.0, "5678"], "objectValue": {"value": 0.0}}}),
        ),
        ok(
            "StructWithEmptyListValue",
            r#"{"optionalStruct": {"listValue": []}}"#,
            json!({"optionalStruct": {"listValue": []}}),
        ),
        ok("ValueAcceptInteger", r#"{"optionalValue": 1}"#, json!({"optionalValue": 1.0})),
        ok("ValueAcceptFloat", r#"{"optionalValue": 1.5}"#, json!({"optionalValue": 1.5})),
        ok("ValueAcceptBool", r#"{"optionalValue": false}"#, json!({"optionalValue": false})),
        ok("ValueAcceptString", r#"{"optionalValue": "hello"}"#, json!({"optionalValue": "hello"})),
        ok("ValueAcceptList", r#"{"optionalValue": [0, "hello"]}"#, json!({"optionalValue": [0.0, "hello"]})),
        ok("ValueAcceptObject", r#"{"optionalValue": {"value": 1}}"#, json!({"optionalValue": {"value": 1.0}})),
        ok("RepeatedValue", r#"{"repeatedValue": [["a"]]}"#, json!({"repeatedValue": [["a"]]})),
        ok("RepeatedListValue", r#"{"repeatedListValue": [["a"]]}"#, json!({"repeatedListValue": [["a"]]})),
        // Any, with a type the descriptors know.
        ok(
            "Any",
            r#"{"optionalAny": {"@type": "type.googleapis.com/conformance.v1.ForeignMessage", "c": 12345}}"#,
            json!({"optionalAny": {"@type": "type.googleapis.com/conformance.v1.ForeignMessage", "c": 12345}}),
        ),
        ok(
            "AnyWithDuration",
            r#"{"optionalAny": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.5s"}}"#,
            json!({"optionalAny": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.500s"}}),
        ),
        fail("AnyUnknownType", r#"{"optionalAny": {"@type": "type.googleapis.com/no.Such", "c": 1}}"#),
        // The message itself.
        fail("TopLevelNull", "null"),
        fail("TopLevelArray", "[]"),
        fail("TopLevelNumber", "1"),
        fail("TrailingGarbage", r#"{"optionalInt32": 1} x"#),
        fail("NotJson", "{"),
    ]
}

/// Whether `got` has what `want` says: the same scalars (floats to float precision), and for
/// objects at least the wanted keys (`"<absent>"`: the key must be missing).
fn has(want: &Value, got: Option<&Value>) -> bool {
    match (want, got) {
        (Value::String(s), None) => s == "<absent>",
        (Value::String(s), Some(_)) if s == "<absent>" => false,
        (Value::Object(w), Some(Value::Object(g))) => w.iter().all(|(k, v)| has(v, g.get(k))),
        (Value::Array(w), Some(Value::Array(g))) => w.len() == g.len() && w.iter().zip(g).all(|(a, b)| has(a, Some(b))),
        (Value::Number(w), Some(Value::Number(g))) => match (w.as_f64(), g.as_f64()) {
            (Some(a), Some(b)) if w.is_f64() || g.is_f64() => a == b || ((a - b) / a).abs() < 1e-6,
            _ => w == g,
        },
        (w, g) => Some(w) == g,
    }
}

/// Whether an echoed message has what the case wants; what differs, if not.
fn check(case: &Case, how: &str, got: &Value) -> Result<(), String> {
    let Want::Ok(want) = &case.want else { unreachable!() };
    for (k, v) in want.as_object().unwrap() {
        if !has(v, got.get(k)) {
            let actual = got.get(k).map_or("(absent)".to_owned(), |g| g.to_string());
            return Err(format!("{} via {how}: {k} should be {v}, is {actual}", case.name));
        }
    }
    Ok(())
}

/// Checks one answer (HTTP status and body) against the case.
fn judge(case: &Case, how: &str, status: u16, body: &Value) -> Result<(), String> {
    match &case.want {
        Want::Ok(_) if status == 200 => check(case, how, body),
        Want::Ok(_) => Err(format!("{} via {how}: {status} {}", case.name, body["message"])),
        Want::Fail if status == 400 && body["code"] == 3 => Ok(()),
        Want::Fail => Err(format!("{} via {how} should fail, got {status}", case.name)),
    }
}

/// A gRPC codec that passes messages through as bytes.
#[derive(Default, Clone)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The test backend: echoes each method's input as its output, knowing nothing of the messages.
#[derive(Clone)]
struct EchoService;

impl tonic::server::NamedService for EchoService {
    const NAME: &'static str = "conformance.v1.ConformanceService";
}

impl tower::Service<http::Request<tonic::body::Body>> for EchoService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Raw);
            let method = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
            Ok(match method.as_str() {
                "Echo" | "EchoQuery" => {
                    let svc = tower::service_fn(|r: tonic::Request<Bytes>| async move {
                        Ok::<_, tonic::Status>(tonic::Response::new(r.into_inner()))
                    });
                    grpc.unary(svc, req).await
                }
                "EchoLast" => {
                    let svc = tower::service_fn(|r: tonic::Request<tonic::Streaming<Bytes>>| async move {
                        let mut s = r.into_inner();
                        let mut last = Bytes::new();
                        while let Some(m) = s.message().await? {
                            last = m;
                        }
                        Ok::<_, tonic::Status>(tonic::Response::new(last))
                    });
                    grpc.client_streaming(svc, req).await
                }
                _ => {
                    let svc = tower::service_fn(|r: tonic::Request<tonic::Streaming<Bytes>>| async move {
                        let echo = r.into_inner().map(|m| m);
                        Ok::<_, tonic::Status>(tonic::Response::new(echo))
                    });
                    grpc.streaming(svc, req).await
                }
            })
        })
    }
}

fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protos")
}

fn proto_file() -> PathBuf {
    proto_dir().join("conformance/v1/conformance.proto")
}

/// The test proto's descriptors, compiled as the gateway compiles them.
fn pool() -> prost_reflect::DescriptorPool {
    let set = gateway::sources::compile_protos(&[proto_file()], &[proto_dir()]).unwrap();
    prost_reflect::DescriptorPool::decode(set.as_slice()).unwrap()
}

/// Starts the echo backend and a gateway for the test proto; returns the gateway's base URL.
async fn start() -> String {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(grpc);
    tokio::spawn(tonic::transport::Server::builder().add_service(EchoService).serve_with_incoming(incoming));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // The gateway loads the test proto at start-up, as `--proto FILE --proto-path DIR` does.
    let mut config = gateway::Config::for_backend(format!("http://{grpc_addr}"));
    config.api.protos = vec![proto_file()];
    config.api.proto_paths = vec![proto_dir()];
    let gw = gateway::server::gateway(&config).await.unwrap();
    tokio::spawn(async move { gateway::server::serve_gateway(listener, gw, &config, std::future::pending()).await });
    base
}

/// The query-string form of a case whose input is one field with a textual value, if it has one.
fn as_query(case: &Case) -> Option<String> {
    let v: Value = serde_json::from_str(case.input).ok()?;
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (key, value) = obj.iter().next()?;
    let pool = pool();
    let desc = pool.get_message_by_name("conformance.v1.TestAllTypes")?;
    let field = desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key))?;
    if field.is_list() || field.is_map() || !gateway::descriptor::is_textual(&field.kind()) {
        return None;
    }
    let text = match value {
        Value::String(s) => {
            // A quoted value for a field that is not text-like means something else in JSON.
            let kind = gateway::descriptor::unwrapped(&field.kind());
            let texty =
                matches!(kind, prost_reflect::Kind::String | prost_reflect::Kind::Bytes | prost_reflect::Kind::Enum(_))
                    || matches!(kind, prost_reflect::Kind::Message(_));
            let numeric_text = s.parse::<f64>().is_ok() || ["NaN", "Infinity", "-Infinity"].contains(&s.as_str());
            if !texty && !numeric_text {
                return None;
            }
            s.clone()
        }
        Value::Number(n)
            if !matches!(
                gateway::descriptor::unwrapped(&field.kind()),
                prost_reflect::Kind::String | prost_reflect::Kind::Bytes | prost_reflect::Kind::Bool
            ) =>
        {
            n.to_string()
        }
        Value::Bool(b) if gateway::descriptor::unwrapped(&field.kind()) == prost_reflect::Kind::Bool => b.to_string(),
        _ => return None,
    };
    let enc = |s: &str| percent_encode(s);
    Some(format!("{}={}", enc(key), enc(&text)))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn proto3_json_conformance_on_every_path() {
    let base = start().await;
    let http = reqwest::Client::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut failures = Vec::new();
    for case in cases() {
        // A unary body.
        let resp = http.post(format!("{base}/conformance/echo")).body(case.input).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        failures.extend(judge(&case, "body", status, &body).err());
        *counts.entry("unary body").or_default() += 1;

        // One NDJSON line of a client stream.
        let resp = http
            .post(format!("{base}/conformance/stream"))
            .header("Content-Type", "application/x-ndjson")
            .body(format!("{}\n", case.input))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        failures.extend(judge(&case, "NDJSON", status, &body).err());
        *counts.entry("NDJSON line").or_default() += 1;

        // One WebSocket frame: the echo, or an error frame and close code 1011.
        let url = format!("{}/conformance/ws", base.replacen("http://", "ws://", 1));
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(Ws::Text(case.input.into())).await.unwrap();
        let mut frame = Value::Null;
        let mut close = None;
        let read = async {
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Ws::Text(t) => {
                        frame = serde_json::from_str(&t).unwrap();
                        if frame.get("error").is_none() {
                            break;
                        }
                    }
                    Ws::Close(c) => {
                        close = c.map(|c| u16::from(c.code));
                        break;
                    }
                    _ => {}
                }
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(10), read).await.is_err() {
            failures.push(format!("{} via WebSocket: no answer", case.name));
            continue;
        }
        let (status, body) = match (&frame.get("error"), close) {
            (Some(e), Some(1011)) => (400, (*e).clone()),
            (Some(e), other) => (0, json!({"error": e, "close": other})),
            (None, _) => (200, frame.clone()),
        };
        failures.extend(judge(&case, "WebSocket", status, &body).err());
        *counts.entry("WebSocket frame").or_default() += 1;

        // The query string, for one textual field.
        if let Some(q) = as_query(&case) {
            let resp = http.get(format!("{base}/conformance/query?{q}")).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            failures.extend(judge(&case, &format!("query {q}"), status, &body).err());
            *counts.entry("query string").or_default() += 1;
        }
    }
    println!("conformance cases run: {counts:?}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
