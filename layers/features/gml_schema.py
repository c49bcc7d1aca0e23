"""A layer's GML application schema (XML Schema): its feature type and geometry type, for GIS
clients that take a layer's geometry type from the schema a collection is ``describedBy``
(GDAL's OGC API Features driver).

Only the geometry is declared; properties stay open (``xs:any``), as the GeoJSON features
and the queryables describe them. A layer of one geometry type declares that type. A mixed
layer (``Geometry``) declares ``gml:MultiGeometryPropertyType``: GDAL reads it as a
GeometryCollection layer, the one generic type it keeps, where it would read
``gml:GeometryPropertyType`` as "not known yet" and take the type of the first features.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from layers.catalog.registry import Layer

GML = "http://www.opengis.net/gml/3.2"
PROPERTY_TYPES = {
    "point": "PointPropertyType",
    "multipoint": "MultiPointPropertyType",
    "linestring": "LineStringPropertyType",
    "multilinestring": "MultiCurvePropertyType",
    "polygon": "PolygonPropertyType",
    "multipolygon": "MultiSurfacePropertyType",
}
"""GML geometry property types by catalog geometry type (GDAL reads each as that type)."""
MIXED = "MultiGeometryPropertyType"


def geometry_property_type(layer: Layer) -> str:
    """The GML property type declaring ``layer``'s geometry."""
    return PROPERTY_TYPES.get(layer.geometry_type.lower(), MIXED)


def gml_schema(layer: Layer, namespace: str) -> str:
    """The XML Schema of ``layer``'s features in target namespace ``namespace``."""
    element = quoteattr(layer.id)
    feature_type = quoteattr(f"cityhex:{layer.id}Type")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:gml="{GML}"
    xmlns:cityhex={quoteattr(namespace)} targetNamespace={quoteattr(namespace)}
    elementFormDefault="qualified">
  <xs:import namespace="{GML}"/>
  <xs:element name={element} type={feature_type} substitutionGroup="gml:AbstractFeature"/>
  <xs:complexType name={quoteattr(f"{layer.id}Type")}>
    <xs:complexContent>
      <xs:extension base="gml:AbstractFeatureType">
        <xs:sequence>
          <xs:element name="geometry" type="gml:{geometry_property_type(layer)}" minOccurs="0"/>
          <xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
        </xs:sequence>
      </xs:extension>
    </xs:complexContent>
  </xs:complexType>
</xs:schema>
"""
