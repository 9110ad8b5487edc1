//! Address lists in OpenSSH's `source-address` form: comma-separated addresses
//! and CIDR blocks.

use std::net::IpAddr;

/// Whether `ip` is in the list. Unparsable entries match nothing.
pub(crate) fn list_contains(list: &str, ip: IpAddr) -> bool {
    list.split(',')
        .any(|entry| entry_contains(entry.trim(), ip))
}

fn entry_contains(entry: &str, ip: IpAddr) -> bool {
    let (address, prefix) = match entry.split_once('/') {
        Some((address, prefix)) => (address, prefix.parse::<u32>().ok()),
        None => (entry, None),
    };
    let Ok(network) = address.parse::<IpAddr>() else {
        return false;
    };
    match (network, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
            u128::from(u32::from(net)),
            u128::from(u32::from(ip)),
            prefix,
            32,
        ),
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            prefix_matches(u128::from(net), u128::from(ip), prefix, 128)
        }
        _ => false,
    }
}

fn prefix_matches(network: u128, ip: u128, prefix: Option<u32>, bits: u32) -> bool {
    let prefix = prefix.unwrap_or(bits);
    if prefix > bits {
        return false;
    }
    let shift = bits - prefix;
    if shift >= 128 {
        return true;
    }
    (network >> shift) == (ip >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_addresses_and_blocks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(list_contains("10.0.0.0/8", ip("10.200.1.1")));
        assert!(!list_contains("10.0.0.0/8", ip("11.0.0.1")));
        assert!(list_contains("192.0.2.7, 127.0.0.1", ip("127.0.0.1")));
        assert!(list_contains("0.0.0.0/0", ip("8.8.8.8")));
        assert!(list_contains("2001:db8::/32", ip("2001:db8::1")));
        assert!(!list_contains("2001:db8::/32", ip("10.0.0.1")));
        assert!(!list_contains("10.0.0.0/33,garbage", ip("10.0.0.1")));
    }
}
