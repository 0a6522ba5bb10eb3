//! What a driver keeps for the commands it gave an actor, until the actor names them again.

use std::collections::HashMap;

use tandem_core::document::CommandId;

/// Values waiting under command ids this driver hands out (counting from 1).
pub(crate) struct Pending<T> {
    last: u64,
    waiting: HashMap<CommandId, T>,
}

impl<T> Pending<T> {
    pub(crate) fn new() -> Self {
        Pending {
            last: 0,
            waiting: HashMap::new(),
        }
    }

    /// Keeps `value` under a new command id.
    pub(crate) fn insert(&mut self, value: T) -> CommandId {
        self.last += 1;
        let command = CommandId(self.last);
        self.waiting.insert(command, value);
        command
    }

    /// Takes what waits under `command`.
    pub(crate) fn take(&mut self, command: CommandId) -> Option<T> {
        self.waiting.remove(&command)
    }

    /// Puts back what was taken too early.
    pub(crate) fn restore(&mut self, command: CommandId, value: T) {
        self.waiting.insert(command, value);
    }
}
