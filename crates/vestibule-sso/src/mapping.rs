//! IdP groups to Vestibule roles.

use std::collections::{BTreeMap, BTreeSet};

/// What to change in a person's role grants after a single sign-on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoleSync {
    pub grant: Vec<String>,
    pub revoke: Vec<String>,
}

/// The grants to add and remove so that the roles the mapping manages match the
/// person's groups now. Roles that no group maps to are never touched (they
/// were granted by an administrator); a role some group maps to is managed by
/// single sign-on and removed when the person is no longer in such a group.
pub fn plan_role_sync(
    groups_to_roles: &BTreeMap<String, Vec<String>>,
    groups: &[String],
    current_roles: &[String],
) -> RoleSync {
    let managed: BTreeSet<&String> = groups_to_roles.values().flatten().collect();
    let wanted: BTreeSet<&String> = groups
        .iter()
        .filter_map(|g| groups_to_roles.get(g))
        .flatten()
        .collect();
    let current: BTreeSet<&String> = current_roles.iter().collect();
    RoleSync {
        grant: wanted
            .iter()
            .filter(|r| !current.contains(*r))
            .map(|r| (*r).clone())
            .collect(),
        revoke: current
            .iter()
            .filter(|r| managed.contains(*r) && !wanted.contains(*r))
            .map(|r| (*r).clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn grants_and_revokes_only_managed_roles() {
        let mut map = BTreeMap::new();
        map.insert("ops".to_string(), s(&["operators", "readers"]));
        map.insert("dev".to_string(), s(&["developers"]));
        let plan = plan_role_sync(
            &map,
            &s(&["ops", "unmapped"]),
            &s(&["developers", "manual"]),
        );
        assert_eq!(plan.grant, s(&["operators", "readers"]));
        assert_eq!(plan.revoke, s(&["developers"]));
        let none = plan_role_sync(&map, &s(&["ops"]), &s(&["operators", "readers"]));
        assert_eq!(none, RoleSync::default());
    }
}
