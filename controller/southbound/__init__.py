"""The controller's southbound: which switches to program (:mod:`.inventory`) and, for now,
a one-shot installer over P4Runtime (:mod:`.install`)."""

from controller.southbound.inventory import InventoryError, SwitchAddress, load_inventory

__all__ = ["InventoryError", "SwitchAddress", "load_inventory"]
