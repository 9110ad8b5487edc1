//! Roles as Cedar: the `role` commands are a convenience, and each role stands
//! for the policies written here. Names and labels are validated by the core
//! model (letters, digits, `.`, `_`, `-`), so they need no escaping in Cedar text.

use vestibule_core::{Role, SelectorTerm};

/// The Cedar policies a role stands for: sessions on the targets its selector
/// covers as its logins, and port forwarding through them if it allows that.
/// Their ids are `role:NAME` and `role:NAME:port_forward`.
pub fn role_policy(role: &Role) -> String {
    let targets = role
        .targets
        .terms()
        .iter()
        .map(|term| match term {
            SelectorTerm::Everything => "true".to_owned(),
            SelectorTerm::Name(name) => format!("resource.name == \"{name}\""),
            SelectorTerm::Label(label) => format!(
                "(resource.hasTag(\"{0}\") && resource.getTag(\"{0}\") == \"{1}\")",
                label.key, label.value
            ),
        })
        .collect::<Vec<_>>()
        .join(" || ");
    let logins = role
        .logins
        .iter()
        .map(|l| format!("\"{l}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let name = &role.name;
    let mfa = if role.require_mfa {
        " && context.mfa"
    } else {
        ""
    };
    let mut text = format!(
        "@id(\"role:{name}\")\n\
         permit (\n  principal in Vestibule::Role::\"{name}\",\n  \
         action in Vestibule::Action::\"ssh.session\",\n  resource\n)\n\
         when {{ ({targets}) && [{logins}].contains(context.login){mfa} }};\n"
    );
    if role.allow_port_forwarding {
        text.push_str(&format!(
            "\n@id(\"role:{name}:port_forward\")\n\
             permit (\n  principal in Vestibule::Role::\"{name}\",\n  \
             action == Vestibule::Action::\"ssh.port_forward\",\n  resource\n)\n\
             when {{ ({targets}){mfa} }};\n"
        ));
    }
    text
}
