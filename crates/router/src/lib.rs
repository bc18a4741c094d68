//! The dialbridge call router: which dialled number may reach which bridge, from which
//! trunk, under which licence, and the capacity each admitted call holds until it ends.
