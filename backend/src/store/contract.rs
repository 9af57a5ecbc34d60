//! What every store implementation must do, as one suite of tests written against the traits.
//!
//! [`store_contract!`] instantiates the whole suite for one implementation, given an async
//! function that opens a fresh, empty store (and whatever must live as long as it). A database
//! that is not available on this machine returns `None` from it, and the tests say they were
//! skipped rather than pass silently.

use super::{NewUser, Store, StoreError, UserPatch};
use futures::StreamExt;
use switchyard_proto::chat::v1::ChatMessage;
use switchyard_proto::order::v1::{Order, OrderItem, OrderStatus};
use switchyard_proto::upload::v1::UploadInfo;
use switchyard_proto::user::v1::UserStatus;
use switchyard_proto::wkt::Timestamp;

fn new_user(n: u32) -> NewUser {
    NewUser { name: format!("User {n}"), email: format!("u{n}@example.com"), age: 30 }
}

fn item(q: i32) -> OrderItem {
    OrderItem { product_id: format!("p{q}"), name: "Widget \"deluxe\" ✓".into(), quantity: q, price: 1.5 }
}

pub async fn users_create_get_update_delete(s: &dyn Store) {
    let u = s.create_user(new_user(1)).await.unwrap();
    assert!(u.active);
    assert_eq!(u.status(), UserStatus::Active);
    assert!(u.created_at.is_some());
    assert_eq!(s.get_user(&u.id).await.unwrap(), u);
    let patched = s.update_user(&u.id, UserPatch { age: Some(0), ..Default::default() }).await.unwrap();
    assert_eq!((patched.age, patched.name.as_str()), (0, "User 1"));
    assert_eq!(s.get_user(&u.id).await.unwrap(), patched);
    s.delete_user(&u.id).await.unwrap();
    assert!(matches!(s.get_user(&u.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.delete_user(&u.id).await, Err(StoreError::NotFound(_))));
    let missing = s.update_user(&u.id, UserPatch { age: Some(1), ..Default::default() }).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
}

pub async fn users_emails_are_unique_ignoring_case(s: &dyn Store) {
    s.create_user(new_user(1)).await.unwrap();
    let mut dup = new_user(2);
    dup.email = "U1@EXAMPLE.com".into();
    assert!(matches!(s.create_user(dup).await, Err(StoreError::AlreadyExists(_))));
    let other = s.create_user(new_user(3)).await.unwrap();
    let taken = UserPatch { email: Some("u1@example.com".into()), ..Default::default() };
    assert!(matches!(s.update_user(&other.id, taken).await, Err(StoreError::AlreadyExists(_))));
}

pub async fn users_pages_follow_creation_order_to_the_end(s: &dyn Store) {
    for n in 0..5 {
        s.create_user(new_user(n)).await.unwrap();
    }
    let mut after = 0;
    let mut names = Vec::new();
    loop {
        let page = s.list_users(after, 2).await.unwrap();
        assert!(page.users.len() <= 2);
        names.extend(page.users.into_iter().map(|u| u.name));
        match page.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(names, (0..5).map(|n| format!("User {n}")).collect::<Vec<_>>());
}

pub async fn orders_stream_in_order_and_block_user_deletion(s: &dyn Store) {
    let u = s.create_user(new_user(1)).await.unwrap();
    let mut made = Vec::new();
    for q in 1..=5 {
        made.push(s.create_order(&u.id, vec![item(q), item(10 + q)], 1.5 * f64::from(q)).await.unwrap());
    }
    let all: Vec<Order> = s.orders_of_user(&u.id, None).map(Result::unwrap).collect().await;
    assert_eq!(all, made, "items, totals and times read back as written, in creation order");
    assert_eq!(all[0].items, vec![item(1), item(11)]);
    assert_eq!(all[0].status(), OrderStatus::Pending);
    assert_eq!(s.orders_of_user(&u.id, Some(2)).count().await, 2);
    assert_eq!(s.orders_of_user("nobody", None).count().await, 0);
    assert_eq!(s.get_order(&made[2].order_id).await.unwrap(), made[2]);
    assert!(matches!(s.get_order("no-such-order").await, Err(StoreError::NotFound(_))));
    let r = s.delete_user(&u.id).await;
    assert!(matches!(r, Err(StoreError::InUse(_))), "{r:?}");
    assert!(matches!(s.create_order("nobody", vec![item(1)], 1.0).await, Err(StoreError::NotFound(_))));
}

/// More orders than a SQL store reads in one page: each page starts after the last order of the
/// one before, whatever the limit.
pub async fn orders_stream_across_pages(s: &dyn Store) {
    let u = s.create_user(new_user(1)).await.unwrap();
    let page = crate::store::sql_store::ORDER_PAGE as u32;
    let n = 2 * page + 3;
    let made: Vec<Order> = futures::stream::iter(0..n)
        .then(|q| s.create_order(&u.id, vec![item(1 + (q % 7) as i32)], f64::from(q)))
        .map(Result::unwrap)
        .collect()
        .await;
    let all: Vec<Order> = s.orders_of_user(&u.id, None).map(Result::unwrap).collect().await;
    assert_eq!(all, made);
    for limit in [page, page + 1, page + 44] {
        let some: Vec<Order> = s.orders_of_user(&u.id, Some(limit)).map(Result::unwrap).collect().await;
        assert_eq!(some, made[..limit as usize], "limit {limit}");
    }
}

pub async fn orders_status_changes_are_compare_and_set(s: &dyn Store) {
    let u = s.create_user(new_user(1)).await.unwrap();
    let o = s.create_order(&u.id, vec![item(1)], 1.5).await.unwrap();
    let paid = s.set_order_status(&o.order_id, OrderStatus::Pending, OrderStatus::Paid).await.unwrap();
    assert_eq!(paid.status(), OrderStatus::Paid);
    assert!(paid.updated_at.unwrap() >= o.updated_at.unwrap());
    let again = s.set_order_status(&o.order_id, OrderStatus::Pending, OrderStatus::Paid).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    let missing = s.set_order_status("nope", OrderStatus::Pending, OrderStatus::Paid).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

/// Several writers racing on one order: exactly one wins each step.
pub async fn orders_racing_status_changes_have_one_winner(s: &dyn Store) {
    let u = s.create_user(new_user(1)).await.unwrap();
    let o = s.create_order(&u.id, vec![item(1)], 1.5).await.unwrap();
    let attempts =
        (0..8).map(|_| s.set_order_status(&o.order_id, OrderStatus::Pending, OrderStatus::Paid)).collect::<Vec<_>>();
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_)))), "{results:?}");
}

pub async fn uploads_metadata_round_trips(s: &dyn Store) {
    let info = UploadInfo {
        file_id: "f-1".into(),
        upload_id: "u-1".into(),
        size: 5 << 30,
        sha256: "ab".repeat(32),
        created_at: Some(Timestamp { seconds: 1_700_000_000, nanos: 123_456_789 }),
    };
    s.insert_upload(&info).await.unwrap();
    assert_eq!(s.get_upload("f-1").await.unwrap(), info);
    assert!(matches!(s.get_upload("f-2").await, Err(StoreError::NotFound(_))));
}

fn chat(room: &str, text: String) -> ChatMessage {
    ChatMessage { session_id: room.into(), user_id: "u".into(), message: text, timestamp: 7, id: 0 }
}

pub async fn chat_history_is_the_last_n_oldest_first_per_room(s: &dyn Store) {
    for i in 0..60 {
        let room = if i % 2 == 0 { "a" } else { "b" };
        let stored = s.append_chat(chat(room, format!("m{i}"))).await.unwrap();
        assert_eq!(stored.id, i / 2 + 1, "ids are positions in the room, from 1");
        assert_eq!(stored.timestamp, 7);
    }
    let h = s.chat_history("a", 5).await.unwrap();
    assert_eq!(h.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), ["m50", "m52", "m54", "m56", "m58"]);
    assert_eq!(h.iter().map(|m| m.id).collect::<Vec<_>>(), [26, 27, 28, 29, 30]);
    assert!(s.chat_history("none", 5).await.unwrap().is_empty());
    let since = s.chat_since("b", 28, 10).await.unwrap();
    assert_eq!(since.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), ["m57", "m59"]);
    assert_eq!(s.chat_since("b", 0, 3).await.unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
}

/// Posts racing into one room take positions one after another: no gaps, no duplicates.
pub async fn chat_racing_posts_take_consecutive_positions(s: &dyn Store) {
    let posts = (0..16).map(|i| s.append_chat(chat("race", format!("r{i}")))).collect::<Vec<_>>();
    let mut ids: Vec<i64> = futures::future::join_all(posts).await.into_iter().map(|r| r.unwrap().id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=16).collect::<Vec<_>>());
    let h = s.chat_history("race", 50).await.unwrap();
    assert_eq!(h.iter().map(|m| m.id).collect::<Vec<_>>(), (1..=16).collect::<Vec<_>>());
}

/// The whole suite as `#[tokio::test]`s in a module named `$name`, each on a fresh store from
/// `$open` (an async fn returning `Option<(Guard, Store)>`; `None` skips, visibly).
macro_rules! store_contract {
    ($name:ident, $open:path) => {
        mod $name {
            use crate::store::contract;
            store_contract!(@tests $open;
                users_create_get_update_delete,
                users_emails_are_unique_ignoring_case,
                users_pages_follow_creation_order_to_the_end,
                orders_stream_in_order_and_block_user_deletion,
                orders_stream_across_pages,
                orders_status_changes_are_compare_and_set,
                orders_racing_status_changes_have_one_winner,
                uploads_metadata_round_trips,
                chat_history_is_the_last_n_oldest_first_per_room,
                chat_racing_posts_take_consecutive_positions,
            );
        }
    };
    (@tests $open:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((_guard, store)) = $open().await else {
                    // Straight to stderr: the test harness would swallow eprintln! of a pass.
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED {}::{}: its database is not configured here",
                        module_path!(),
                        stringify!($case)
                    );
                    return;
                };
                contract::$case(&store).await;
            }
        )*
    };
}

store_contract!(sqlite, crate::store::sqlite::test_store);
store_contract!(postgres, crate::store::postgres::test_store);
