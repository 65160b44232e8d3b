"""Asset cards and the store that finds them."""

from lmhub.assets.card import AssetCard
from lmhub.assets.store import AssetStore, default_asset_store, register_cards

__all__ = ["AssetCard", "AssetStore", "default_asset_store", "register_cards"]
