"""Trading strategies: S4 directional, multi-asset S4 allocation, Avellaneda–Stoikov market
making."""
