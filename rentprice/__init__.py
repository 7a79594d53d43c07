"""rentprice: domain code shared by the DVC stages that predict Amsterdam apartment rents."""

__version__ = "0.1.0"
