//! A native gRPC client of the reference backend, with the generated tonic stubs.
//!
//! Run with `cargo run --example grpc_client -- http://127.0.0.1:50051`.

use switchyard_proto::order::v1::order_service_client::OrderServiceClient;
use switchyard_proto::order::v1::{CreateOrderRequest, GetOrdersRequest, OrderItem};
use switchyard_proto::user::v1::user_service_client::UserServiceClient;
use switchyard_proto::user::v1::{CreateUserRequest, GetUserRequest};
use tonic::Code;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let addr = if addr.contains("://") { addr } else { format!("http://{addr}") };
    let channel = tonic::transport::Endpoint::from_shared(addr)?.connect().await?;
    let mut users = UserServiceClient::new(channel.clone());
    let mut orders = OrderServiceClient::new(channel);

    let email = format!("rust-{}@example.com", std::process::id());
    let user = users.create_user(CreateUserRequest { name: "Rusty".into(), email, age: 9 }).await?.into_inner();
    println!("created user {} ({})", user.id, user.email);

    // A deadline and metadata travel with the call, as the gateway sends them too.
    let mut req = tonic::Request::new(GetUserRequest { user_id: user.id.clone() });
    req.set_timeout(std::time::Duration::from_secs(2));
    req.metadata_mut().insert("x-request-id", "grpc-client-example".parse()?);
    let read = users.get_user(req).await?.into_inner();
    println!("read back: {} {} age {}", read.id, read.name, read.age);

    let item = OrderItem { product_id: "p1".into(), name: "Widget".into(), quantity: 3, price: 2.5 };
    orders.create_order(CreateOrderRequest { user_id: user.id.clone(), items: vec![item] }).await?;
    let mut stream = orders.get_orders(GetOrdersRequest { user_id: user.id.clone(), limit: 0 }).await?.into_inner();
    while let Some(order) = stream.message().await? {
        println!("order {} total {} {}", order.order_id, order.total, order.status().as_str_name());
    }

    // Errors are statuses with codes (and details), the same ones REST clients see as HTTP.
    let err = users.get_user(GetUserRequest { user_id: "no-such-user".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    println!("missing user: {:?} {}", err.code(), err.message());
    Ok(())
}
