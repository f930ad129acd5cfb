"""The inventory: hosts, groups, vars and connection settings."""

from drp.inventory.loader import Inventory, load_inventory
from drp.inventory.model import Address, Become, Console, Host

__all__ = ["Address", "Become", "Console", "Host", "Inventory", "load_inventory"]
