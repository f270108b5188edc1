//! List requests in flight: the most at once, and the order in which they started and ended, so
//! that a test can see whether a client reads pages concurrently, and when it stops doing so.
//! No clock is involved: overlap is observed, never timed.

use super::shared::lock;
use std::sync::Mutex;

/// One list request starting or ending, in the order the simulator saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flight {
    /// A list request arrived; `in_flight` counts it and every other one not yet answered.
    Start { in_flight: usize },
    /// A list request was answered with `status`, or `None` when the client went away first.
    End { status: Option<u16> },
}

#[derive(Default)]
pub struct Flights {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    max: usize,
    log: Vec<Flight>,
}

impl Flights {
    /// Notes a list request arriving; the guard notes it ending.
    pub fn start(&self) -> Boarding<'_> {
        let mut state = lock(&self.state);
        state.in_flight += 1;
        state.max = state.max.max(state.in_flight);
        let in_flight = state.in_flight;
        state.log.push(Flight::Start { in_flight });
        Boarding {
            flights: self,
            status: None,
        }
    }

    /// The most list requests in flight at once since the last reset.
    pub fn max(&self) -> usize {
        lock(&self.state).max
    }

    pub fn log(&self) -> Vec<Flight> {
        lock(&self.state).log.clone()
    }

    /// Forgets the maximum and the log (requests still in flight stay counted).
    pub fn reset(&self) {
        let mut state = lock(&self.state);
        state.max = state.in_flight;
        state.log.clear();
    }
}

/// One list request in flight, until dropped.
pub struct Boarding<'a> {
    flights: &'a Flights,
    status: Option<u16>,
}

impl Boarding<'_> {
    /// The status the request is answered with.
    pub fn answered(&mut self, status: u16) {
        self.status = Some(status);
    }
}

impl Drop for Boarding<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.flights.state);
        state.in_flight = state.in_flight.saturating_sub(1);
        state.log.push(Flight::End {
            status: self.status,
        });
    }
}
