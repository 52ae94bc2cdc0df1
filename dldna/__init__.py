"""dldna: helper package for chapter 10 of Deep Learning DNA."""

__version__ = "1.0.0.dev0"
