//! The proto3 JSON mapping of the generated types, as the gateway relies on it.

use serde_json::json;
use switchyard_proto::types::v1::{Event, ScalarTypes};
use switchyard_proto::user::v1::{UpdateUserRequest, User, UserStatus};

#[test]
fn defaults_are_emitted_with_camel_case_names() {
    let v = serde_json::to_value(User::default()).unwrap();
    assert_eq!(
        v,
        json!({"id": "", "name": "", "email": "", "age": 0, "active": false, "roles": [],
               "metadata": {}, "createdAt": null, "status": "USER_STATUS_UNSPECIFIED"})
    );
}

#[test]
fn scalars_use_strings_for_64_bit_and_base64_for_bytes() {
    let s = ScalarTypes {
        int64_field: -5,
        uint64_field: u64::MAX,
        bytes_field: b"hi".to_vec(),
        double_field: f64::NAN,
        ..Default::default()
    };
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["int64Field"], "-5");
    assert_eq!(v["uint64Field"], "18446744073709551615");
    assert_eq!(v["bytesField"], "aGk=");
    assert_eq!(v["doubleField"], "NaN");
}

#[test]
fn input_accepts_proto_names_numbers_and_enum_numbers_and_ignores_unknown_fields() {
    let u: User = serde_json::from_value(json!({
        "created_at": {"timestamp": 5}, "status": 2, "unknown": [1, 2], "age": "7"
    }))
    .unwrap();
    assert_eq!(u.created_at.as_ref().unwrap().timestamp, 5);
    assert_eq!(u.status(), UserStatus::Inactive);
    assert_eq!(u.age, 7);
    let u: User = serde_json::from_value(json!({"status": "USER_STATUS_SUSPENDED"})).unwrap();
    assert_eq!(u.status(), UserStatus::Suspended);
}

#[test]
fn wrappers_and_well_known_types_are_canonical() {
    let e: Event = serde_json::from_value(json!({
        "id": "e", "createdAt": "2024-01-02T03:04:05.5+01:00", "duration": "1.5s",
        "name": null, "count": 3, "status": {}
    }))
    .unwrap();
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(
        v,
        json!({"id": "e", "createdAt": "2024-01-02T02:04:05.500Z", "duration": "1.500s",
               "name": null, "count": 3, "status": {}})
    );
    let r: UpdateUserRequest = serde_json::from_value(json!({"updateMask": "name,age"})).unwrap();
    assert_eq!(r.update_mask.unwrap().paths, ["name", "age"]);
}
