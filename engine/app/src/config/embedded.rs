//! The shipped configuration in `deploy/config`, compiled in so `mora demo` needs no files.

pub(super) const DECISIONS: &str = include_str!("../../../../deploy/config/decisions.toml");

pub(super) const POLICIES: [(&str, &str); 6] = [
    (
        "CL.toml",
        include_str!("../../../../deploy/config/policies/CL.toml"),
    ),
    (
        "CO.toml",
        include_str!("../../../../deploy/config/policies/CO.toml"),
    ),
    (
        "MX.toml",
        include_str!("../../../../deploy/config/policies/MX.toml"),
    ),
    (
        "PE.toml",
        include_str!("../../../../deploy/config/policies/PE.toml"),
    ),
    (
        "US-MA.toml",
        include_str!("../../../../deploy/config/policies/US-MA.toml"),
    ),
    (
        "US.toml",
        include_str!("../../../../deploy/config/policies/US.toml"),
    ),
];

pub(super) const HOLIDAYS: [(&str, &str); 6] = [
    (
        "CL.toml",
        include_str!("../../../../deploy/config/holidays/CL.toml"),
    ),
    (
        "CO.toml",
        include_str!("../../../../deploy/config/holidays/CO.toml"),
    ),
    (
        "MX.toml",
        include_str!("../../../../deploy/config/holidays/MX.toml"),
    ),
    (
        "PE.toml",
        include_str!("../../../../deploy/config/holidays/PE.toml"),
    ),
    (
        "US-MA.toml",
        include_str!("../../../../deploy/config/holidays/US-MA.toml"),
    ),
    (
        "US.toml",
        include_str!("../../../../deploy/config/holidays/US.toml"),
    ),
];
