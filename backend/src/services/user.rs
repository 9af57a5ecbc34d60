//! `user.v1.UserService` over a [`Store`].

use crate::error::{ApiError, Validator};
use crate::store::{NewUser, Store, UserPatch};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::Arc;
use switchyard_proto::user::v1::user_service_server::UserService;
use switchyard_proto::user::v1::{
    CreateUserRequest, DeleteUserRequest, GetUserRequest, ListUsersRequest, ListUsersResponse, UpdateUserRequest, User,
};
use tonic::{Request, Response, Status};

/// Page size when the client asks for 0.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Larger page sizes are lowered to this.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The User API.
#[derive(Clone)]
pub struct UserApi {
    store: Arc<dyn Store>,
}

impl UserApi {
    pub fn new(store: Arc<dyn Store>) -> Self {
        UserApi { store }
    }
}

/// A plausible email: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn check_name(v: &mut Validator, name: &str) {
    v.check(!name.trim().is_empty(), "name", "must not be empty");
    v.check(name.chars().count() <= 200, "name", "must be at most 200 characters");
}

fn check_email(v: &mut Validator, email: &str) {
    v.check(valid_email(email), "email", format!("{email:?} is not a valid email address"));
}

fn check_age(v: &mut Validator, age: i32) {
    v.check((0..=150).contains(&age), "age", format!("{age} is outside 0..=150"));
}

const PAGE_TOKEN_PREFIX: &str = "users:";

fn encode_page_token(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PAGE_TOKEN_PREFIX}{after}"))
}

fn decode_page_token(token: &str) -> Result<i64, ApiError> {
    if token.is_empty() {
        return Ok(0);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(PAGE_TOKEN_PREFIX)?.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::InvalidArgument(format!("invalid page_token {token:?}")))
}

/// Validates and creates a user; shared by CreateUser and ProcessBatch.
pub async fn create_user(store: &dyn Store, r: CreateUserRequest) -> Result<User, ApiError> {
    let mut v = Validator::default();
    check_name(&mut v, &r.name);
    check_email(&mut v, &r.email);
    check_age(&mut v, r.age);
    v.finish()?;
    let new = NewUser { name: r.name.trim().to_owned(), email: r.email, age: r.age };
    Ok(store.create_user(new).await?)
}

/// Validates and deletes a user; shared by DeleteUser and ProcessBatch.
pub async fn delete_user(store: &dyn Store, r: DeleteUserRequest) -> Result<(), ApiError> {
    Validator::default().check(!r.user_id.is_empty(), "user_id", "must not be empty").finish()?;
    Ok(store.delete_user(&r.user_id).await?)
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_user(&self, req: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let id = req.into_inner().user_id;
        Validator::default().check(!id.is_empty(), "user_id", "must not be empty").finish()?;
        Ok(Response::new(self.store.get_user(&id).await.map_err(ApiError::from)?))
    }

    async fn create_user(&self, req: Request<CreateUserRequest>) -> Result<Response<User>, Status> {
        let r = req.into_inner();
        let mut v = Validator::default();
        check_name(&mut v, &r.name);
        check_email(&mut v, &r.email);
        check_age(&mut v, r.age);
        v.finish()?;
        let user = self
            .store
            .create_user(NewUser { name: r.name.trim().to_owned(), email: r.email, age: r.age })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(user))
    }

    async fn update_user(&self, req: Request<UpdateUserRequest>) -> Result<Response<User>, Status> {
        let r = req.into_inner();
        let mut v = Validator::default();
        v.check(!r.user_id.is_empty(), "user_id", "must not be empty");
        let mut patch = UserPatch::default();
        match r.update_mask.as_ref().filter(|m| !m.paths.is_empty()) {
            Some(mask) => {
                for path in &mask.paths {
                    match path.as_str() {
                        "name" => patch.name = Some(r.name.clone()),
                        "email" => patch.email = Some(r.email.clone()),
                        "age" => patch.age = Some(r.age),
                        other => {
                            v.check(false, "update_mask", format!("unknown or immutable field {other:?}"));
                        }
                    }
                }
            }
            // AIP-134: without a mask, every field that holds a non-default value is applied.
            None => {
                patch.name = Some(r.name.clone()).filter(|s| !s.is_empty());
                patch.email = Some(r.email.clone()).filter(|s| !s.is_empty());
                patch.age = Some(r.age).filter(|a| *a != 0);
            }
        }
        if let Some(name) = &patch.name {
            check_name(&mut v, name);
        }
        if let Some(email) = &patch.email {
            check_email(&mut v, email);
        }
        if let Some(age) = patch.age {
            check_age(&mut v, age);
        }
        v.finish()?;
        patch.name = patch.name.map(|n| n.trim().to_owned());
        let user = self.store.update_user(&r.user_id, patch).await.map_err(ApiError::from)?;
        Ok(Response::new(user))
    }

    async fn delete_user(&self, req: Request<DeleteUserRequest>) -> Result<Response<pbjson_types::Empty>, Status> {
        delete_user(self.store.as_ref(), req.into_inner()).await?;
        Ok(Response::new(pbjson_types::Empty {}))
    }

    async fn list_users(&self, req: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        let r = req.into_inner();
        Validator::default().check(r.page_size >= 0, "page_size", format!("{} is negative", r.page_size)).finish()?;
        let size = match r.page_size as u32 {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = decode_page_token(&r.page_token)?;
        let page = self.store.list_users(after, size).await.map_err(ApiError::from)?;
        Ok(Response::new(ListUsersResponse {
            users: page.users,
            next_page_token: page.next.map(encode_page_token).unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for good in ["a@b.co", "first.last+tag@example.com", "x@sub.domain.org"] {
            assert!(valid_email(good), "{good}");
        }
        for bad in ["", "a", "@b.co", "a@", "a@b", "a@@b.co", "a b@c.de", "a@.b", "a@b.", "a@b..c"] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_page_token("").unwrap(), 0);
        assert_eq!(decode_page_token(&encode_page_token(42)).unwrap(), 42);
        for bad in ["x", "!!!", &URL_SAFE_NO_PAD.encode("users:-1"), &URL_SAFE_NO_PAD.encode("nope:1")] {
            assert!(decode_page_token(bad).is_err(), "{bad}");
        }
    }
}
