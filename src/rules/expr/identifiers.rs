//! The names an expression can read in each scope, and the table the engine extends with
//! its own fleet numbers (the advisor's `desired_workers`, `scale_delta`).

use super::Scope;
use crate::model::Field;

/// A fleet identifier computed from the snapshot's workers (SPEC §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FleetNumber {
    Workers,
    Ready,
    Starting,
    Inactive,
    Failed,
    Load,
    NewLoad,
    LoadRolling,
    Perf,
    CurPerf,
    MeasuredPerf,
    ReqsWorking,
    Utilization,
}

impl FleetNumber {
    pub const ALL: [FleetNumber; 13] = [
        FleetNumber::Workers,
        FleetNumber::Ready,
        FleetNumber::Starting,
        FleetNumber::Inactive,
        FleetNumber::Failed,
        FleetNumber::Load,
        FleetNumber::NewLoad,
        FleetNumber::LoadRolling,
        FleetNumber::Perf,
        FleetNumber::CurPerf,
        FleetNumber::MeasuredPerf,
        FleetNumber::ReqsWorking,
        FleetNumber::Utilization,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FleetNumber::Workers => "workers",
            FleetNumber::Ready => "ready",
            FleetNumber::Starting => "starting",
            FleetNumber::Inactive => "inactive",
            FleetNumber::Failed => "failed",
            FleetNumber::Load => "load",
            FleetNumber::NewLoad => "new_load",
            FleetNumber::LoadRolling => "load_rolling",
            FleetNumber::Perf => "perf",
            FleetNumber::CurPerf => "cur_perf",
            FleetNumber::MeasuredPerf => "measured_perf",
            FleetNumber::ReqsWorking => "reqs_working",
            FleetNumber::Utilization => "utilization",
        }
    }

    pub fn from_name(name: &str) -> Option<FleetNumber> {
        FleetNumber::ALL
            .into_iter()
            .find(|number| number.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A worker-scope identifier other than `fleet.NAME` and vars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerName {
    Field(Field),
    Status,
    /// The status's class: `ready`, `starting`, `inactive`, `failed` or `unknown`.
    Class,
    Age,
    Utilization,
}

impl WorkerName {
    pub fn from_name(name: &str) -> Option<WorkerName> {
        match name {
            "status" => Some(WorkerName::Status),
            "class" => Some(WorkerName::Class),
            "age" => Some(WorkerName::Age),
            "utilization" => Some(WorkerName::Utilization),
            _ => Field::from_name(name).map(WorkerName::Field),
        }
    }

    /// Every worker-scope name, in the order the docs list them.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        Field::ALL
            .into_iter()
            .map(Field::name)
            .chain(["status", "class", "age", "utilization"])
    }
}

/// A fleet-scope number: computed from the workers, or registered by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FleetName {
    Standard(FleetNumber),
    /// A slot in [`super::FleetValues`]' extras.
    Extra(usize),
}

/// The identifiers expressions may use. Start from [`Identifiers::standard`] and register
/// the engine's own fleet numbers with [`Identifiers::with_fleet_number`]; each gets the
/// next slot, which [`super::Snapshot::new`]'s `extras` (or
/// [`super::FleetValues::set_extra`]) fills per snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identifiers {
    fleet_extras: Vec<String>,
}

impl Identifiers {
    /// The identifiers of SPEC §6.3 that come from the worker list itself.
    pub fn standard() -> Identifiers {
        Identifiers::default()
    }

    /// Registers a fleet-scope number (also `fleet.NAME` in worker scope) whose slot is the
    /// number of extras registered before it.
    ///
    /// # Panics
    /// When `name` is not a plain identifier or is already taken: the table is built by
    /// code, not from user input, so that is a programming error.
    pub fn with_fleet_number(mut self, name: &str) -> Identifiers {
        let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        assert!(plain, "`{name}` is not a plain lower-case identifier");
        assert!(
            self.fleet(name).is_none() && WorkerName::from_name(name).is_none(),
            "`{name}` is already an identifier"
        );
        self.fleet_extras.push(name.to_string());
        self
    }

    /// The slot of a registered fleet number.
    pub fn fleet_extra_slot(&self, name: &str) -> Option<usize> {
        self.fleet_extras.iter().position(|extra| extra == name)
    }

    /// The registered fleet numbers, by slot.
    pub fn fleet_extras(&self) -> &[String] {
        &self.fleet_extras
    }

    /// Every identifier of a scope as an expression would write it (`fleet.ready` in worker
    /// scope), e.g. to offer them to annotation templates. Vars are not included.
    pub fn names(&self, scope: Scope) -> Vec<String> {
        let fleet = self.fleet_names();
        match scope {
            Scope::Fleet => fleet.map(str::to_string).collect(),
            Scope::Worker => WorkerName::all_names()
                .map(str::to_string)
                .chain(fleet.map(|name| format!("fleet.{name}")))
                .collect(),
        }
    }

    pub(crate) fn fleet(&self, name: &str) -> Option<FleetName> {
        FleetNumber::from_name(name)
            .map(FleetName::Standard)
            .or_else(|| self.fleet_extra_slot(name).map(FleetName::Extra))
    }

    pub(crate) fn fleet_names(&self) -> impl Iterator<Item = &str> {
        FleetNumber::ALL
            .into_iter()
            .map(|number| -> &str { number.name() })
            .chain(self.fleet_extras.iter().map(String::as_str))
    }
}
