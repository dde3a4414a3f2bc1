"""Free energies: reference systems (Einstein crystal, Uhlenbeck-Ford liquid), lambda mixing
of force terms for thermodynamic switching, and the reference free energies in closed form."""
from .einstein import EinsteinTerm
from .mixing import LambdaMixing, switching_derivative, switching_value
from .uhlenbeck_ford import UhlenbeckFordTerm

__all__ = ["EinsteinTerm", "LambdaMixing", "UhlenbeckFordTerm", "switching_value",
           "switching_derivative"]
