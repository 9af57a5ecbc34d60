//! `order.v1.OrderService`: orders in the store, their changes on the event bus.
//!
//! Watchers (StreamOrderUpdates) each buffer up to the bus capacity of changes; a watcher that
//! falls further behind ends with RESOURCE_EXHAUSTED and must watch again (and re-read state).

use crate::error::{ApiError, Validator};
use crate::events::{EventBus, Missed, Subscription};
use crate::store::Store;
use futures::StreamExt;
use futures::stream::BoxStream;
use prost::Message as _;
use std::sync::Arc;
use switchyard_proto::order::v1::order_service_server::OrderService;
use switchyard_proto::order::v1::{
    CreateOrderRequest, GetOrderRequest, GetOrdersRequest, Order, OrderStatus, OrderUpdate, StreamRequest,
    UpdateOrderStatusRequest,
};
use tonic::{Request, Response, Status};

/// The topic of changes to a user's orders.
pub fn user_topic(user_id: &str) -> String {
    format!("orders.user.{user_id}")
}

/// The topic of changes to one order.
pub fn order_topic(order_id: &str) -> String {
    format!("orders.order.{order_id}")
}

/// The order API.
#[derive(Clone)]
pub struct OrderApi {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
}

impl OrderApi {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>) -> Self {
        OrderApi { store, bus }
    }

    fn publish(&self, order: &Order) {
        let update = OrderUpdate {
            order_id: order.order_id.clone(),
            user_id: order.user_id.clone(),
            status: order.status,
            updated_at: order.updated_at,
        };
        let bytes = bytes::Bytes::from(update.encode_to_vec());
        self.bus.publish(&user_topic(&order.user_id), bytes.clone());
        self.bus.publish(&order_topic(&order.order_id), bytes);
    }
}

/// The one status an order may move to from `from`.
pub fn next_status(from: OrderStatus) -> Option<OrderStatus> {
    match from {
        OrderStatus::Pending => Some(OrderStatus::Paid),
        OrderStatus::Paid => Some(OrderStatus::Shipped),
        OrderStatus::Shipped => Some(OrderStatus::Delivered),
        OrderStatus::Delivered | OrderStatus::Unspecified => None,
    }
}

fn updates(mut sub: Subscription) -> BoxStream<'static, Result<OrderUpdate, Status>> {
    Box::pin(async_stream::stream! {
        loop {
            match sub.recv().await {
                Ok(Some(bytes)) => match OrderUpdate::decode(bytes) {
                    Ok(u) => yield Ok(u),
                    Err(e) => tracing::error!(error = %e, "undecodable order update on the bus"),
                },
                Ok(None) => break,
                Err(lag @ Missed::Lagged(_)) => {
                    yield Err(Status::resource_exhausted(format!(
                        "this watcher {lag} and was dropped; watch again and re-read the orders"
                    )));
                    break;
                }
                // Retryable: watching again starts from the orders' current state.
                Err(missed @ Missed::Interrupted) => {
                    yield Err(Status::unavailable(format!("this watcher {missed}; watch again")));
                    break;
                }
            }
        }
    })
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    type GetOrdersStream = BoxStream<'static, Result<Order, Status>>;
    type StreamOrderUpdatesStream = BoxStream<'static, Result<OrderUpdate, Status>>;

    async fn get_orders(&self, req: Request<GetOrdersRequest>) -> Result<Response<Self::GetOrdersStream>, Status> {
        let r = req.into_inner();
        Validator::default()
            .check(!r.user_id.is_empty(), "user_id", "must not be empty")
            .check(r.limit >= 0, "limit", format!("{} is negative", r.limit))
            .finish()?;
        self.store.get_user(&r.user_id).await.map_err(ApiError::from)?;
        let limit = u32::try_from(r.limit).ok().filter(|l| *l > 0);
        let stream =
            self.store.orders_of_user(&r.user_id, limit).map(|o| o.map_err(|e| Status::from(ApiError::from(e))));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn stream_order_updates(
        &self,
        req: Request<StreamRequest>,
    ) -> Result<Response<Self::StreamOrderUpdatesStream>, Status> {
        let r = req.into_inner();
        let (topic, exists) = match (r.user_id.is_empty(), r.order_id.is_empty()) {
            (false, true) => (user_topic(&r.user_id), true),
            (true, false) => (order_topic(&r.order_id), false),
            _ => {
                return Err(ApiError::Invalid(vec![crate::error::Violation {
                    field: "user_id".into(),
                    description: "set exactly one of user_id and order_id".into(),
                }])
                .into());
            }
        };
        // Subscribe before checking existence, so no change slips between the two.
        let sub = self.bus.subscribe(&topic);
        if exists {
            self.store.get_user(&r.user_id).await.map_err(ApiError::from)?;
        } else {
            self.store.get_order(&r.order_id).await.map_err(ApiError::from)?;
        }
        Ok(Response::new(updates(sub)))
    }

    async fn create_order(&self, req: Request<CreateOrderRequest>) -> Result<Response<Order>, Status> {
        let r = req.into_inner();
        let mut v = Validator::default();
        v.check(!r.user_id.is_empty(), "user_id", "must not be empty");
        v.check(!r.items.is_empty(), "items", "an order needs at least one item");
        for (i, item) in r.items.iter().enumerate() {
            v.check(!item.product_id.is_empty(), &format!("items[{i}].product_id"), "must not be empty");
            v.check(item.quantity > 0, &format!("items[{i}].quantity"), format!("{} is not positive", item.quantity));
            v.check(
                item.price.is_finite() && item.price >= 0.0,
                &format!("items[{i}].price"),
                format!("{} is not a price", item.price),
            );
        }
        v.finish()?;
        let total = r.items.iter().map(|i| f64::from(i.quantity) * i.price).sum();
        let order = self.store.create_order(&r.user_id, r.items, total).await.map_err(ApiError::from)?;
        self.publish(&order);
        Ok(Response::new(order))
    }

    async fn get_order(&self, req: Request<GetOrderRequest>) -> Result<Response<Order>, Status> {
        let id = req.into_inner().order_id;
        Validator::default().check(!id.is_empty(), "order_id", "must not be empty").finish()?;
        Ok(Response::new(self.store.get_order(&id).await.map_err(ApiError::from)?))
    }

    async fn update_order_status(&self, req: Request<UpdateOrderStatusRequest>) -> Result<Response<Order>, Status> {
        let r = req.into_inner();
        let to = OrderStatus::try_from(r.status).ok().filter(|s| *s != OrderStatus::Unspecified);
        Validator::default()
            .check(!r.order_id.is_empty(), "order_id", "must not be empty")
            .check(to.is_some(), "status", format!("{} is not an order status", r.status))
            .finish()?;
        let to = to.expect("validated");
        let current = self.store.get_order(&r.order_id).await.map_err(ApiError::from)?;
        let from = current.status();
        if next_status(from) != Some(to) {
            let allowed =
                next_status(from).map_or("none: the order is complete".to_owned(), |s| s.as_str_name().to_owned());
            return Err(ApiError::FailedPrecondition(format!(
                "cannot move order from {} to {}; the next status is {allowed}",
                from.as_str_name(),
                to.as_str_name()
            ))
            .into());
        }
        // A concurrent change makes this ABORTED (409): the client re-reads and decides again.
        let order = self.store.set_order_status(&r.order_id, from, to).await.map_err(ApiError::from)?;
        self.publish(&order);
        Ok(Response::new(order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_moves_one_step_forward_only() {
        assert_eq!(next_status(OrderStatus::Pending), Some(OrderStatus::Paid));
        assert_eq!(next_status(OrderStatus::Paid), Some(OrderStatus::Shipped));
        assert_eq!(next_status(OrderStatus::Shipped), Some(OrderStatus::Delivered));
        assert_eq!(next_status(OrderStatus::Delivered), None);
    }
}
