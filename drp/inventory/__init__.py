"""The inventory: hosts, groups, vars and connection settings."""

from drp.inventory.loader import Inventory, load_inventory
from drp.inventory.model import Address, Become, Host

__all__ = ["Address", "Become", "Host", "Inventory", "load_inventory"]
