"""Shipped rule packs (package data): cn.yaml, us.yaml, eu.yaml, uk.yaml."""
