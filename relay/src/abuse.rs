//! Limits on what anonymous customers can make the relay do, so one address or one
//! shop's widget cannot crowd out the rest: new customer connections per address per
//! minute, customer connections open at once per address, and customers' messages per
//! second per workspace (every widget key of a shop together). Each refusal says which
//! limit and what to do. Agents are limited by their tokens and sign-in instead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kefu_proto::{ErrorCode, ProtocolError, WorkspaceId};

use crate::config::LimitsConfig;

/// The customer-side limits of one relay.
pub struct CustomerLimits {
    connects: DefaultKeyedRateLimiter<IpAddr>,
    messages: DefaultKeyedRateLimiter<WorkspaceId>,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    open_per_ip: u32,
    connects_per_minute: u32,
    messages_per_second: u32,
}

/// Counts a customer connection open until dropped.
pub struct OpenConnection {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("open connections lock");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn positive(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least one")
}

impl CustomerLimits {
    /// Limits as configured.
    pub fn new(limits: &LimitsConfig) -> CustomerLimits {
        let per_minute = limits.customer_connects_per_minute_per_ip;
        let per_second = limits.customer_messages_per_second_per_workspace;
        CustomerLimits {
            connects: RateLimiter::keyed(Quota::per_minute(positive(per_minute))),
            // A second's worth may come at once: a burst of customers writing together.
            messages: RateLimiter::keyed(Quota::per_second(positive(per_second))),
            open: Arc::default(),
            open_per_ip: limits.customer_connections_per_ip,
            connects_per_minute: per_minute,
            messages_per_second: per_second,
        }
    }

    /// Admits a new customer connection from `ip`, or says which limit it met.
    pub fn connect(&self, ip: IpAddr) -> Result<OpenConnection, ProtocolError> {
        let mut open = self.open.lock().expect("open connections lock");
        let now_open = open.get(&ip).copied().unwrap_or(0);
        if now_open >= self.open_per_ip {
            return Err(ProtocolError::new(
                ErrorCode::RateLimited,
                format!("{} customer connections are open from your address; close one first", self.open_per_ip),
            ));
        }
        if self.connects.check_key(&ip).is_err() {
            return Err(ProtocolError::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} new customer connections a minute from your address; wait a moment",
                    self.connects_per_minute
                ),
            ));
        }
        *open.entry(ip).or_insert(0) += 1;
        Ok(OpenConnection { ip, open: self.open.clone() })
    }

    /// Counts one customer message into `workspace`; refused over the shop's rate.
    pub fn message(&self, workspace: WorkspaceId) -> Result<(), ProtocolError> {
        self.messages.check_key(&workspace).map_err(|_| {
            ProtocolError::new(
                ErrorCode::RateLimited,
                format!(
                    "this shop receives more than {} customer messages a second right now; send again in a moment",
                    self.messages_per_second
                ),
            )
        })
    }

    /// Drops idle keys so memory stays bounded.
    pub fn shrink(&self) {
        self.connects.retain_recent();
        self.messages.retain_recent();
        self.connects.shrink_to_fit();
        self.messages.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(open: u32, per_minute: u32, per_second: u32) -> CustomerLimits {
        CustomerLimits::new(&LimitsConfig {
            customer_connections_per_ip: open,
            customer_connects_per_minute_per_ip: per_minute,
            customer_messages_per_second_per_workspace: per_second,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn connections_per_address_are_counted_open_and_per_minute() {
        let limits = limits(2, 3, 10);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limits.connect(a).unwrap();
        let _second = limits.connect(a).unwrap();
        let refused = limits.connect(a).err().unwrap();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(refused.message.contains("2 customer connections are open"), "{}", refused.message);
        assert!(limits.connect(b).is_ok(), "another address is not affected");
        drop(first);
        // Room again, but the third connection this minute was the last allowed.
        let _third = limits.connect(a).unwrap();
        drop(_third);
        let refused = limits.connect(a).err().unwrap();
        assert!(refused.message.contains("more than 3 new customer connections a minute"), "{}", refused.message);
    }

    #[test]
    fn messages_per_workspace_are_limited_per_second() {
        let limits = limits(10, 10, 5);
        let (shop, other) = (WorkspaceId(1), WorkspaceId(2));
        for _ in 0..5 {
            limits.message(shop).unwrap();
        }
        let refused = limits.message(shop).unwrap_err();
        assert!(refused.message.contains("more than 5 customer messages a second"), "{}", refused.message);
        assert!(limits.message(other).is_ok());
    }
}
