//! What the caller knows about a request beyond who, what and where: the time,
//! the person's address, how they authenticated, a ticket, a just-in-time grant.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use cedar_policy::{Context, RestrictedExpression};

use crate::Action;

/// An approved access request that covers this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantContext {
    pub id: String,
    pub expires_unix: i64,
}

/// The request's context, turned into Cedar's `context` record.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub now: SystemTime,
    pub source_ip: Option<IpAddr>,
    pub auth_method: String,
    pub mfa: bool,
    pub break_glass: bool,
    pub ticket: Option<String>,
    pub grant: Option<GrantContext>,
    /// Who filed the request being approved, and why (request.approve only).
    pub reason: Option<String>,
}

impl RequestContext {
    /// A context at the current time with nothing else known.
    pub fn now(auth_method: impl Into<String>) -> Self {
        Self {
            now: SystemTime::now(),
            source_ip: None,
            auth_method: auth_method.into(),
            mfa: false,
            break_glass: false,
            ticket: None,
            grant: None,
            reason: None,
        }
    }

    pub(crate) fn to_cedar(&self, action: &Action<'_>) -> Result<Context, String> {
        let unix = self
            .now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let time = time_record(unix);
        let now = RestrictedExpression::new_datetime(rfc3339(unix));
        let mut pairs: Vec<(String, RestrictedExpression)> = vec![
            ("login".into(), string(action.login())),
            ("time".into(), time),
            ("now".into(), now),
        ];
        match action {
            Action::Session { .. } | Action::PortForward { .. } | Action::Recording { .. } => {
                pairs.push(("auth_method".into(), string(&self.auth_method)));
                pairs.push(("mfa".into(), RestrictedExpression::new_bool(self.mfa)));
                pairs.push((
                    "break_glass".into(),
                    RestrictedExpression::new_bool(self.break_glass),
                ));
                if let Some(ip) = self.source_ip {
                    pairs.push((
                        "source_ip".into(),
                        RestrictedExpression::new_ip(ip.to_string()),
                    ));
                }
                if let Some(ticket) = &self.ticket {
                    pairs.push(("ticket".into(), string(ticket)));
                }
                if let Some(grant) = &self.grant {
                    let record = RestrictedExpression::new_record([
                        ("id".to_owned(), string(&grant.id)),
                        (
                            "expires_unix".to_owned(),
                            RestrictedExpression::new_long(grant.expires_unix),
                        ),
                    ]);
                    pairs.push(("grant".into(), record.map_err(|e| e.to_string())?));
                }
            }
            Action::RequestAccess { .. } | Action::ApproveRequest { .. } => {
                if let Some(reason) = &self.reason {
                    pairs.push(("reason".into(), string(reason)));
                }
            }
        }
        match action {
            Action::Session {
                kind: crate::SessionKind::Exec { command },
                ..
            } => pairs.push(("command".into(), string(command))),
            Action::PortForward { host, port, .. } => {
                pairs.push(("destination_host".into(), string(host)));
                pairs.push((
                    "destination_port".into(),
                    RestrictedExpression::new_long(i64::from(*port)),
                ));
            }
            Action::RequestAccess { duration_secs, .. } => pairs.push((
                "duration_secs".into(),
                RestrictedExpression::new_long(*duration_secs as i64),
            )),
            Action::ApproveRequest {
                requester,
                duration_secs,
                ..
            } => {
                pairs.push(("requester".into(), string(requester)));
                pairs.push((
                    "duration_secs".into(),
                    RestrictedExpression::new_long(*duration_secs as i64),
                ));
            }
            Action::Session { .. } | Action::Recording { .. } => {}
        }
        Context::from_pairs(pairs).map_err(|e| e.to_string())
    }
}

fn string(text: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(text.to_owned())
}

fn time_record(unix: i64) -> RestrictedExpression {
    let day_secs = unix.rem_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        [unix.div_euclid(86_400).rem_euclid(7) as usize];
    let fields = [
        ("unix", RestrictedExpression::new_long(unix)),
        ("hour", RestrictedExpression::new_long(day_secs / 3600)),
        (
            "minute",
            RestrictedExpression::new_long(day_secs % 3600 / 60),
        ),
        ("weekday", string(weekday)),
    ];
    // Field names are distinct, so building the record cannot fail.
    RestrictedExpression::new_record(fields.map(|(k, v)| (k.to_owned(), v)))
        .unwrap_or_else(|_| RestrictedExpression::new_long(unix))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (civil-from-days, proleptic Gregorian).
fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_867_200), "2026-11-28T12:00:00Z");
    }
}
