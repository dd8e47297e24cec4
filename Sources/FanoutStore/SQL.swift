/// Every SQL statement of the product, as `static let` constants in extensions of this type, so
/// that the SQL lives in this module and nowhere else.
enum SQL {}
