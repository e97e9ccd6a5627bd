"""Views, one module per page family; each stays thin: fetch, judge, render."""
