//! The shipped decision configuration in `defaults/` (beside this crate's manifest), compiled in so `mora demo` needs
//! no files. The deployment files (`deploy/`) point at the same files.

pub(super) const DECISIONS: &str = include_str!("../../defaults/decisions.toml");

pub(super) const POLICIES: [(&str, &str); 6] = [
    ("CL.toml", include_str!("../../defaults/policies/CL.toml")),
    ("CO.toml", include_str!("../../defaults/policies/CO.toml")),
    ("MX.toml", include_str!("../../defaults/policies/MX.toml")),
    ("PE.toml", include_str!("../../defaults/policies/PE.toml")),
    (
        "US-MA.toml",
        include_str!("../../defaults/policies/US-MA.toml"),
    ),
    ("US.toml", include_str!("../../defaults/policies/US.toml")),
];

pub(super) const HOLIDAYS: [(&str, &str); 6] = [
    ("CL.toml", include_str!("../../defaults/holidays/CL.toml")),
    ("CO.toml", include_str!("../../defaults/holidays/CO.toml")),
    ("MX.toml", include_str!("../../defaults/holidays/MX.toml")),
    ("PE.toml", include_str!("../../defaults/holidays/PE.toml")),
    (
        "US-MA.toml",
        include_str!("../../defaults/holidays/US-MA.toml"),
    ),
    ("US.toml", include_str!("../../defaults/holidays/US.toml")),
];
