"""The trait group every new store starts with."""

from __future__ import annotations

from convmem.traits.rules import TraitSpec

CONTACT_GROUP = "Contact"
CONTACT_DESCRIPTION = "Contact information of the customer."
# Promoted to the store's default `email` and `phone` identifiers.
PROTECTED_TRAITS = {"email", "phone"}
CONTACT_TRAITS: dict[str, TraitSpec] = {
    "email": TraitSpec("STRING", "Email address", id_type_promotion="email"),
    "phone": TraitSpec("STRING", "Phone number", id_type_promotion="phone"),
    "firstName": TraitSpec("STRING", "First name"),
    "lastName": TraitSpec("STRING", "Last name"),
    "street": TraitSpec("STRING", "Street address"),
    "city": TraitSpec("STRING", "City"),
    "state": TraitSpec("STRING", "State or region"),
    "postalCode": TraitSpec("STRING", "Postal code"),
    "country": TraitSpec("STRING", "Country"),
}
