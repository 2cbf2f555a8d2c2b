//! `shop`: a demo shop's orders and refunds, for examples and benchmarks of
//! work over many records (code mode's "which orders were refunded twice?").
//!
//! The data is generated from a fixed seed, so every instance, host and run
//! sees the same 500 orders and the same refunds. Needs no capabilities.

use serde::{Deserialize, Serialize};
use tack_sdk::{Annotations, CallContext, JsonSchema, ToolError, Toolbox};

/// Orders in the shop.
const ORDERS: u32 = 500;
/// Records per page, at most (and by default).
const PAGE_SIZE: u32 = 100;

/// One order.
#[derive(Serialize, JsonSchema, Clone)]
struct Order {
    /// Order id, `ord_0001` to `ord_0500`.
    order_id: String,
    /// Customer id.
    customer: String,
    /// Order total in cents.
    total_cents: u64,
    /// Day it was placed, `YYYY-MM-DD`.
    placed_on: String,
}

/// One refund of an order.
#[derive(Serialize, JsonSchema, Clone)]
struct Refund {
    /// Refund id.
    refund_id: String,
    /// The order refunded.
    order_id: String,
    /// Amount refunded in cents.
    amount_cents: u64,
    /// Why.
    reason: String,
}

/// The whole shop, generated.
struct Shop {
    orders: Vec<Order>,
    refunds: Vec<Refund>,
}

/// A small linear congruential generator: the same numbers everywhere.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

const REASONS: [&str; 5] = [
    "damaged in transit",
    "wrong size",
    "arrived late",
    "not as described",
    "duplicate charge",
];

fn shop() -> Shop {
    let mut r = Lcg(2026);
    let mut orders = Vec::new();
    let mut refunds = Vec::new();
    for i in 1..=ORDERS {
        let total_cents = 500 + r.next(29_500);
        let order = Order {
            order_id: format!("ord_{i:04}"),
            customer: format!("cus_{:03}", r.next(120) + 1),
            total_cents,
            placed_on: format!("2026-11-{:02}", r.next(30) + 1),
        };
        // About 30% refunded once, 2.5% twice.
        let roll = r.next(1000);
        let times = if roll < 25 {
            2
        } else if roll < 300 {
            1
        } else {
            0
        };
        for _ in 0..times {
            let part = r.next(total_cents / 2) + 100;
            refunds.push(Refund {
                refund_id: format!("rf_{:04}", refunds.len() + 1),
                order_id: order.order_id.clone(),
                amount_cents: part.min(total_cents),
                reason: REASONS[r.next(REASONS.len() as u64) as usize].to_string(),
            });
        }
        orders.push(order);
    }
    Shop { orders, refunds }
}

/// Which page to read.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PageInput {
    /// Page number, from 1 (default 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    page: Option<u32>,
    /// Records per page, 1 to 100 (default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    page_size: Option<u32>,
}

/// A page of orders.
#[derive(Serialize, JsonSchema)]
struct OrderPage {
    /// The orders on this page.
    orders: Vec<Order>,
    /// This page's number.
    page: u32,
    /// How many pages there are.
    pages: u32,
    /// How many orders there are in all.
    total: u32,
}

/// A page of refunds.
#[derive(Serialize, JsonSchema)]
struct RefundPage {
    /// The refunds on this page.
    refunds: Vec<Refund>,
    /// This page's number.
    page: u32,
    /// How many pages there are.
    pages: u32,
    /// How many refunds there are in all.
    total: u32,
}

/// The records of `input`'s page of `all`: (records, page, pages).
fn page_of<T: Clone>(all: &[T], input: &PageInput) -> Result<(Vec<T>, u32, u32), ToolError> {
    let size = input.page_size.unwrap_or(PAGE_SIZE);
    if !(1..=PAGE_SIZE).contains(&size) {
        return Err(ToolError::invalid(
            "/page_size",
            format!("a page holds 1 to {PAGE_SIZE} records, not {size}"),
        ));
    }
    let pages = (all.len() as u32).div_ceil(size).max(1);
    let page = input.page.unwrap_or(1);
    if page == 0 || page > pages {
        return Err(ToolError::invalid(
            "/page",
            format!("there are pages 1 to {pages}, not {page}"),
        ));
    }
    let start = ((page - 1) * size) as usize;
    let end = (start + size as usize).min(all.len());
    Ok((all[start..end].to_vec(), page, pages))
}

fn list_orders(input: PageInput, _: &CallContext) -> Result<OrderPage, ToolError> {
    let shop = shop();
    let (orders, page, pages) = page_of(&shop.orders, &input)?;
    Ok(OrderPage {
        orders,
        page,
        pages,
        total: shop.orders.len() as u32,
    })
}

fn list_refunds(input: PageInput, _: &CallContext) -> Result<RefundPage, ToolError> {
    let shop = shop();
    let (refunds, page, pages) = page_of(&shop.refunds, &input)?;
    Ok(RefundPage {
        refunds,
        page,
        pages,
        total: shop.refunds.len() as u32,
    })
}

fn tools() -> Toolbox {
    Toolbox::new()
        .tool(
            "list_orders",
            "List the shop's orders, a page at a time (oldest first).",
            Annotations::read_only(),
            list_orders,
        )
        .tool(
            "list_refunds",
            "List every refund the shop has issued, a page at a time (oldest first).",
            Annotations::read_only(),
            list_refunds,
        )
}

tack_sdk::export_tools!(tools());
tack_sdk::manifest!("tack.toml");
