"""paystream core library: domain logic plus small AWS and Stripe adapters, shipped as the `core` layer."""
