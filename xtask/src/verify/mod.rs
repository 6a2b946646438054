//! Checking that what was deployed answers as it should: the smoke test of
//! each service and the contract tester.

pub mod contract;
pub mod smoke;
